"""A bad-input corpus through the gateway's JSON doors and the staff console's forms: empty, whitespace, 10,000
characters, control characters, mixed scripts, SQL, HTML and template strings, lone surrogates, malformed JSON, wrong
content types, huge headers and huge numbers. Never a 5xx, never an invisible character passed on to Rasa, and the
conversation works afterwards. (WeChat's corpus: test_wechat_bad_input.py.)"""

import dataclasses
import json
import re
import unicodedata

import pytest

from bot import accounts, db, tickets
from bot.models import TicketMessage

# what residents' messages may look like on a bad day
TEXTS = [
    "",
    " ",
    "\t\n\r ",
    "\u3000\u3000",  # ideographic spaces
    "问" * 10_000,
    "a" * 10_000,
    "\x00",
    "医保\x00在哪交",
    "\x1b[31m红色\x1b[0m",
    "\u202e转人工",  # right-to-left override
    "\u2066张三\u2069 125447",
    "张\u200b三",
    "\ufeff你好",
    "\x00\x01\x7f\x85\u200b\u200d\u202e\u2066\ufeff",  # nothing visible at all
    "\ud800",  # a lone surrogate, as JSON lets "\ud800" through
    "补贴\udfff怎么领",
    "Привет 你好 مرحبا שלום 🙂 ñandú ｆｕｌｌ　ｗｉｄｔｈ",
    "𠀀𪚥𰻞",  # CJK beyond the BMP
    "'; DROP TABLE tickets; --",
    "1' OR '1'='1",
    "张三' OR 1=1 --",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "&lt;&amp;&#0;",
    "{{7*7}} ${7*7} {% for x in y %} #{7*7} <%= 7*7 %>",
    "%s%s%s%n %(message)s {0.__class__}",
    "{{IDLE_SECONDS}}",
    '{"sender": "other", "message": "',
    "<xml><![CDATA[ ]]> ]]>",
    "9" * 5000,
    "1e999999",
    "\\u0000\\ud800",  # escapes as text
    "../../../../etc/passwd",
    "\r\nSet-Cookie: anju_staff=x",
]
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")

# request bodies that are no chat message at all
RAW_BODIES = [
    b"",
    b"{",
    b"[" * 60_000,  # nested deeper than Python's recursion limit: json raised RecursionError
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b"null",
    b"1e999999",
    b"NaN",
    b'{"sender": ' + b"9" * 5000 + b', "message": "hi"}',  # over Python's 4300 digits for int()
    b'{"sender": 1e400, "message": "hi"}',
    b'{"sender": "u", "message": "hi", "sender": ["x"]}',  # a repeated key: the last counts
    b'\xef\xbb\xbf{"sender": "u", "message": "hi"}',  # a BOM
    b'{"sender": "u", "message": "\xff\xfe"}',  # not UTF-8
    '{"sender": "u", "message": "你好"}'.encode("gbk"),
    b"<xml><sender>u</sender></xml>",
    b"sender=u&message=%E4%BD%A0%E5%A5%BD",
    b'{"sender": "u", "message": "\\ud800\\udc00\\udc00"}',  # a pair, then a lone one
    b'{"sender": "\\ud800", "message": "hi"}',
    b'{"sender": "\\u202eu", "message": "hi"}',
    b'{"sender": "u\\u0000", "message": "hi"}',
    b'{"sender": "u", "message": "hi", "channel": "\\ud800"}',
    b'{"sender": "u", "message": {"text": "hi"}}',
    b'{"sender": {"$ne": null}, "message": "hi"}',
    b'{"sender": "u", "message": "' + b"x" * 70_000 + b'"}',  # over the 64 KB body limit
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zzz",
    "application/xml",
    "application/json; charset=gbk",
    "application/json; charset=\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
    "",
    "*/*; q=" + "9" * 1000,
]


@pytest.fixture
async def gateway(make_client, settings):
    """The gateway, throttling off: the corpus is many messages from one address."""
    return await make_client(dataclasses.replace(settings, rate_limit_per_ip=0, rate_limit_burst=100_000))


def is_json_error(body):
    return isinstance(body, dict) and body.get("error") and body.get("message")


async def post(client, path, data, content_type="application/json", headers=None):
    response = await client.post(path, data=data, headers={"Content-Type": content_type, **(headers or {})})
    text = await response.text()
    assert response.status < 500, (path, data[:80], response.status, text[:300])
    return response.status, text


async def a_normal_question_is_answered(client, upstream, sender="after-corpus"):
    status, text = await post(client, "/api/chat", json.dumps({"sender": sender, "message": "医保在哪交"}))
    assert status == 200 and json.loads(text)[0]["text"] == "答：医保在哪交"
    assert upstream.requests[-1]["message"] == "医保在哪交"


def assert_clean(upstream):
    for request in upstream.requests:
        for field in ("sender", "message"):
            assert not INVISIBLE.search(request[field]), (field, request[field])


# ---------------------------------------------------------------- /api/chat, the other chat doors, /api/messages


@pytest.mark.parametrize("path", ["/api/chat", "/api/web/chat", "/api/kiosk/chat"])
async def test_the_text_corpus_through_the_chat_doors(gateway, upstream, path):
    for i, text in enumerate(TEXTS):
        body = json.dumps({"sender": f"corpus-{i}", "message": text})  # ensure_ascii: "\ud800" as an escape
        status, reply = await post(gateway, path, body)
        reply = json.loads(reply)
        if status == 200:
            assert reply[0]["text"] and reply[0]["recipient_id"] == f"corpus-{i}"
        else:
            assert status in (400, 413) and is_json_error(reply), (text[:40], status, reply)
    assert_clean(upstream)
    await a_normal_question_is_answered(gateway, upstream)


@pytest.mark.parametrize(
    "message, code",
    [
        ("\x00\x01\x7f\x85\u200b\u200d\u202e\u2066\ufeff", "empty_message"),
        ("\ud800", "empty_message"),
        ("\u202e\u200b \t\n", "empty_message"),
        ("问" * 10_000, "message_too_long"),
    ],
)
async def test_a_message_of_invisible_characters_is_an_empty_message(gateway, upstream, message, code):
    """Before, "\\ud800" went to Rasa, which failed on it: the resident got nothing (200 [])."""
    status, reply = await post(gateway, "/api/chat", json.dumps({"sender": "u", "message": message}))
    assert (status, json.loads(reply)["error"]) == (400 if code == "empty_message" else 413, code)
    assert json.loads(reply)["message"]
    assert not upstream.requests


@pytest.mark.parametrize(
    "message, passed_on",
    [
        ("医保\x00在哪交", "医保在哪交"),
        ("\u202e转人工", "转人工"),
        ("补贴\udfff怎么领", "补贴怎么领"),
        ("张\u200b三\n125447", "张三 125447"),
        ("\ufeff你好\r\n", "你好  "),
    ],
)
async def test_what_reaches_rasa_is_cleaned(gateway, upstream, message, passed_on):
    status, _ = await post(gateway, "/api/chat", json.dumps({"sender": "u", "message": message}))
    assert status == 200 and upstream.requests[-1]["message"] == passed_on


@pytest.mark.parametrize("sender", ["\ud800", "u\x00", "\u202eu", "u\u200b", "a\nb"])
async def test_a_sender_with_invisible_characters_is_refused(gateway, upstream, sender):
    status, reply = await post(gateway, "/api/chat", json.dumps({"sender": sender, "message": "你好"}))
    assert (status, json.loads(reply)["error"]) == (400, "bad_sender")
    assert not upstream.requests


async def test_malformed_json_and_wrong_content_types(gateway, upstream):
    for path in ("/api/chat", "/api/web/chat", "/api/messages", "/api/kiosk/messages"):
        for raw in RAW_BODIES:
            for content_type in CONTENT_TYPES[:2]:
                status, text = await post(gateway, path, raw, content_type)
                if status != 200:
                    assert is_json_error(json.loads(text)), (path, raw[:60], status, text[:200])
        for content_type in CONTENT_TYPES:
            await post(gateway, path, json.dumps({"sender": "u", "message": "你好"}), content_type)
    assert_clean(upstream)
    await a_normal_question_is_answered(gateway, upstream)


async def test_deeply_nested_json_is_not_json(gateway, upstream):
    """json.loads raises RecursionError (not ValueError) past Python's recursion limit."""
    status, text = await post(gateway, "/api/chat", b"[" * 60_000)
    assert (status, json.loads(text)["error"]) == (400, "not_json")


@pytest.mark.parametrize("after", [10**30, 2**63, -1, "1", 1.5, True, None, [], "9" * 5000, 1e308])
async def test_staff_messages_with_odd_after_values(gateway, after):
    status, text = await post(gateway, "/api/messages", json.dumps({"sender": "u", "after": after}))
    assert (status, json.loads(text)["error"]) == (400, "bad_after")


async def test_huge_headers_many_headers_and_odd_urls(gateway, upstream):
    body = json.dumps({"sender": "u", "message": "你好"})
    for headers in (
        {"X-Big": "x" * 8000},
        {"Cookie": "anju_staff=" + "y" * 8000},
        {f"X-Many-{i}": str(i) for i in range(90)},
        {"X-Forwarded-For": ", ".join(["203.0.113.1"] * 500)},
        {"Accept-Language": "zh-CN," * 1000},
    ):
        await post(gateway, "/api/chat", body, headers=headers)
    # over aiohttp's 8190-byte line limit: refused by the HTTP parser itself with a 4xx
    response = await gateway.post("/api/chat", data=body, headers={"X-Huge": "z" * 20_000})
    assert 400 <= response.status < 500
    for path in ("/api/chat?%ff%fe=%00", "/api/%00", "/api/chat/../chat", "/api/" + "a" * 4000, "/api/chat;x"):
        response = await gateway.post(path, data=body, headers={"Content-Type": "application/json"})
        assert response.status < 500, (path, response.status)
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = await gateway.request(method, "/api/chat", data=body)
        assert response.status < 500
    await a_normal_question_is_answered(gateway, upstream)


# ---------------------------------------------------------------- the staff console's forms

PASSWORD = "correct-horse-42"


@pytest.fixture
def staff_users(demo_database):
    with db.session_scope() as s:
        accounts.create_user(s, "admin9", PASSWORD, "admin")


async def signed_in(client):
    page = await client.get("/staff/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    response = await client.post(
        "/staff/login", data={"username": "admin9", "password": PASSWORD, "csrf": token}, allow_redirects=False
    )
    assert response.status == 302
    home = await client.get("/staff")
    return re.search(r'name="csrf" value="([^"]+)"', await home.text()).group(1)


async def staff_post(client, path, form):
    response = await client.post(path, data=form, allow_redirects=False)
    text = await response.text()
    assert response.status < 500, (path, str(form)[:80], response.status, text[:300])
    return response


async def staff_get(client, path, params):
    response = await client.get(path, params=params, allow_redirects=False)
    text = await response.text()
    assert response.status < 500, (path, str(params)[:80], response.status, text[:300])
    return text


# forms cannot carry a lone surrogate (browsers send U+FFFD); everything else goes through as typed
FORM_TEXTS = [t for t in TEXTS if not any(0xD800 <= ord(c) <= 0xDFFF for c in t)]


async def test_the_login_form_takes_any_input(gateway, staff_users):
    page = await gateway.get("/staff/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    for text in FORM_TEXTS:
        await staff_post(gateway, "/staff/login", {"username": text, "password": text, "csrf": token})
        await staff_post(gateway, "/staff/login", {"username": "admin9", "password": PASSWORD, "csrf": text or "é"})
    response = await staff_post(gateway, "/staff/login", {"username": "\x00admin9\u200b", "csrf": token})
    assert response.status == 401  # the name is read without its control characters, the password is wrong
    response = await gateway.post(
        "/staff/login",
        data=b"username=\xff&csrf=" + token.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400 and "表单无法读取" in await response.text()


async def test_a_csrf_token_that_is_not_ascii_is_just_wrong(gateway, staff_users):
    """secrets.compare_digest raises TypeError on non-ASCII text: it was a 500."""
    await signed_in(gateway)
    for csrf in ("令牌", "é", "\x00", "x" * 10_000):
        response = await staff_post(gateway, "/staff/ask", {"message": "医保", "csrf": csrf})
        assert response.status == 403


async def test_the_corpus_through_the_staff_forms(gateway, upstream, staff_users):
    csrf = await signed_in(gateway)
    with db.session_scope() as s:
        ticket_id = tickets.open_ticket(s, "web:corpus", "web", ["居民：转人工"], None).id
    for text in FORM_TEXTS:
        page = await staff_get(gateway, "/staff", {"q": text})
        assert "<script>alert(1)</script>" not in page  # escaped, never markup
        await staff_get(gateway, "/staff/households", {"q": text})
        await staff_post(gateway, "/staff/ask", {"message": text, "csrf": csrf})
        await staff_post(gateway, f"/staff/tickets/{ticket_id}/reply", {"text": text, "csrf": csrf})
        await staff_post(
            gateway, "/staff/users", {"username": text[:64], "password": text, "role": "staff", "csrf": csrf}
        )
        await staff_post(gateway, "/staff/unanswered/handled", {"ids": text[:200], "csrf": csrf})
        form = {"group": text[:200], "up_to": text[:200], "page": text[:200], "csrf": csrf}
        await staff_post(gateway, "/staff/unanswered/handled", form)
        await staff_get(gateway, "/staff/unanswered", {"page": text[:200]})
        await staff_get(gateway, "/staff/tickets", {"page": text[:200], "notice": text[:200]})
    # malformed posts: the wrong content type, broken encodings, a multipart body without its boundary
    for data, content_type in (
        (b"\xff\xfe=\xff&csrf=" + csrf.encode(), "application/x-www-form-urlencoded"),
        (b"%ff%fe=%ed%a0%80&text=%ed%a0%80&csrf=" + csrf.encode(), "application/x-www-form-urlencoded"),
        (json.dumps({"text": "hi", "csrf": csrf}).encode(), "application/json"),
        (b"--zzz\r\nbroken", "multipart/form-data; boundary=zzz"),
        (b"text=hi", "multipart/form-data"),
        (b"<xml/>", "application/xml"),
    ):
        response = await gateway.post(
            f"/staff/tickets/{ticket_id}/reply", data=data, headers={"Content-Type": content_type}
        )
        assert response.status < 500, (data[:40], content_type, response.status)
    # ids far past any database integer, and digits int() reads but the database does not
    for path in (f"/staff/tickets/{10**30}/reply", f"/staff/tickets/{2**63}/close", f"/staff/users/{10**25}/disable"):
        await staff_post(gateway, path, {"text": "你好", "csrf": csrf})
    await staff_get(gateway, f"/staff/households/{'9' * 5000}", {})
    await staff_get(gateway, "/staff/households/%00%ff", {})
    await staff_post(
        gateway, "/staff/unanswered/handled", {"ids": ",".join([str(10**30), "²", "١٢", "-1"]), "csrf": csrf}
    )
    for odd in (str(10**30), "²", "١٢", "-1", "1e3"):
        await staff_post(gateway, "/staff/unanswered/handled", {"group": odd, "up_to": odd, "page": odd, "csrf": csrf})
        await staff_get(gateway, "/staff/unanswered", {"page": odd})
    # the console still works, and what staff sent to the resident is stored without invisible characters
    assert "查答案" in await staff_get(gateway, "/staff", {"q": "医保"})
    with db.session_scope() as s:
        stored = [m.text for m in s.query(TicketMessage).filter_by(ticket_id=ticket_id)]
    assert stored
    assert all(unicodedata.category(ch) != "Cc" or ch in "\n\t" for text in stored for ch in text)
    await a_normal_question_is_answered(gateway, upstream)
