"""The staff console: access control, login, CSRF, expiry, lockout, search ranking, households, unanswered questions,
tickets, accounts."""

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from bot import accounts, db, tickets
from bot.models import AuditEntry, StaffSession, StaffUser, Ticket, Unanswered, utcnow
from bot.staff.__main__ import main as staff_command

PASSWORD = "correct-horse-42"
STAFF_GETS = ["/staff", "/staff/households", "/staff/households/GHY00001", "/staff/tickets", "/staff/unanswered",
              "/staff/unanswered/export.yml", "/staff/users", "/staff/audit", "/staff?q=医保"]  # fmt: skip
STAFF_POSTS = ["/staff/logout", "/staff/ask", "/staff/unanswered/handled", "/staff/tickets/1/reply",
               "/staff/tickets/1/close", "/staff/users", "/staff/users/1/disable"]  # fmt: skip


@pytest.fixture
def users(demo_database):
    with db.session_scope() as s:
        accounts.create_user(s, "admin1", PASSWORD, "admin")
        accounts.create_user(s, "clerk1", PASSWORD, "staff")


def csrf_of(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def login(client, username="clerk1", password=PASSWORD):
    page = await client.get("/staff/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/staff/login", data={"username": username, "password": password, "csrf": token}, allow_redirects=False
    )


async def signed_in(client, username="clerk1"):
    response = await login(client, username)
    assert response.status == 302 and response.headers["Location"] == "/staff"
    home = await client.get("/staff")
    return csrf_of(await home.text())


async def test_anonymous_access_is_refused_everywhere(client, users):
    for path in STAFF_GETS:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/staff/login", path
    for path in STAFF_POSTS:
        response = await client.post(path, data={"csrf": "x"}, allow_redirects=False)
        assert response.status == 403, path


async def test_login_and_cookie_flags(client, users):
    response = await login(client)
    cookie = response.headers["Set-Cookie"]
    assert "anju_staff=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    with db.session_scope() as s:
        [stored] = s.scalars(select(StaffSession)).all()
        assert cookie.split("anju_staff=")[1].split(";")[0] != stored.token_hash  # only a hash is stored
        assert s.scalars(select(StaffUser.password_hash)).first().startswith("scrypt$")


async def test_wrong_password_and_unknown_user_look_the_same(client, users):
    wrong = await login(client, password="wrong-password")
    unknown = await login(client, username="nobody")
    assert wrong.status == unknown.status == 401
    assert "用户名或密码不对" in await wrong.text() and "用户名或密码不对" in await unknown.text()


async def test_lockout_after_five_failures(client, users):
    for _ in range(5):
        response = await login(client, password="wrong-password")
    assert "已锁定" in await response.text()
    response = await login(client)  # even the right password is refused now
    assert response.status == 401 and "已锁定" in await response.text()
    with db.session_scope() as s:
        s.execute(update(StaffUser).values(locked_until=utcnow() - dt.timedelta(seconds=1)))
    assert (await login(client)).status == 302


async def test_csrf_and_cross_site_posts_are_refused(client, users):
    token = await signed_in(client)
    no_token = await client.post("/staff/ask", data={"message": "医保"}, allow_redirects=False)
    assert no_token.status == 403
    cross_site = await client.post(
        "/staff/ask", data={"message": "医保", "csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status == 403
    page = await client.get("/staff/login")
    login_token = csrf_of(await page.text())
    client.session.cookie_jar.clear()
    forged = await client.post("/staff/login", data={"username": "clerk1", "password": PASSWORD, "csrf": login_token})
    assert forged.status == 403


async def test_sessions_expire_and_logout_ends_them(client, users):
    token = await signed_in(client)
    with db.session_scope() as s:
        s.execute(update(StaffSession).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    response = await client.get("/staff", allow_redirects=False)
    assert response.status == 302
    token = await signed_in(client)
    await client.post("/staff/logout", data={"csrf": token}, allow_redirects=False)
    assert (await client.get("/staff", allow_redirects=False)).status == 302


@pytest.mark.parametrize(
    "question, expected",
    [
        ("出去打工路费能报吗", "务工交通补贴"),
        ("交通不贴", "务工交通补贴"),
        ("县里上班三个月有钱吗", "就业奖补"),
        ("學技術有補貼嗎", "技能培训"),
        ("老人没人管", "养老服务"),
        ("房子漏水", "住房维修"),
        ("老家的地还算我的吗", "两地权益"),
        ("得了大病没钱治", "医保看病"),
        ("想摆个摊卖东西", "摆摊创业"),
        ("家里出事收入没了", "监测帮扶"),
        ("网格员是谁", "网格员和调解"),
        ("积分能换啥", "文明户积分"),
        ("仰峤幼儿园", "上学划片"),
        ("孩子不念书了谁管", "教育帮扶"),
        ("安置点有几个", "安置点概况"),
    ],
)
async def test_search_ranks_the_right_answer_first(client, users, question, expected):
    await signed_in(client)
    html = await (await client.get("/staff", params={"q": question})).text()
    titles = re.findall(r'<li class="card hit">\s*<h2>([^<]+)</h2>', html)
    assert titles and titles[0] == expected, (question, titles)
    assert "依据：忻州日报" in html and "复制" in html and "朗读" in html


async def test_search_shows_the_answer_as_the_assistant_gives_it(client, users):
    await signed_in(client)
    html = await (await client.get("/staff", params={"q": "交通补贴"})).text()
    assert "800元/人" in html and "（依据：忻州日报2022年7月13日报道）" in html


async def test_household_lookup_is_masked_and_audited(client, users):
    await signed_in(client)
    for q in ("GHY00001", "张三", "李秀英", "125447"):
        html = await (await client.get("/staff/households", params={"q": q})).text()
        assert "/staff/households/GHY00001" in html, q
        assert "140929197805125447" not in html
    html = await (await client.get("/staff/households/GHY00001")).text()
    assert "140929************" in html and "140929197805125447" not in html
    assert "可申请一次性交通补贴800元" in html and "桃园昇小学" in html
    with db.session_scope() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.actor == "staff:clerk1")).all()
        assert entry.household_id == "GHY00001"
    # only admins read the audit log
    assert (await client.get("/staff/audit")).status == 403


async def test_admin_reads_the_audit_log_and_manages_accounts(client, users):
    token = await signed_in(client, "admin1")
    await client.get("/staff/households/GHY00002")
    html = await (await client.get("/staff/audit")).text()
    assert "GHY00002" in html and "staff:admin1" in html
    response = await client.post(
        "/staff/users", data={"csrf": token, "username": "clerk2", "password": "short", "role": "staff"}
    )
    assert response.status == 400 and "至少10个字符" in await response.text()
    response = await client.post(
        "/staff/users", data={"csrf": token, "username": "clerk2", "password": PASSWORD, "role": "staff"}
    )
    assert response.status == 200 and "已创建账号 clerk2" in await response.text()
    with db.session_scope() as s:
        clerk2 = s.scalars(select(StaffUser).where(StaffUser.username == "clerk2")).one()
        clerk2_id = clerk2.id
    await client.post(f"/staff/users/{clerk2_id}/disable", data={"csrf": token})
    client.session.cookie_jar.clear()
    assert (await login(client, "clerk2")).status == 401


async def test_staff_cannot_manage_accounts(client, users):
    token = await signed_in(client)
    assert (await client.get("/staff/users")).status == 403
    response = await client.post(
        "/staff/users", data={"csrf": token, "username": "x1", "password": PASSWORD, "role": "admin"}
    )
    assert response.status == 403


async def test_unanswered_grouped_charted_exported_and_handled(client, users):
    with db.session_scope() as s:
        for text, topic in [("明天下雨吗", ""), ("明天会下雨吗", ""), ("电话14092919580307042X", ""),
                            ("医保卡丢了咋补办啊", "医保看病"), ("医保卡丢了怎么补办", "医保看病")]:  # fmt: skip
            tickets.log_unanswered(s, "web", "c1", text, "nlu_fallback", topic)
    token = await signed_in(client)
    html = await (await client.get("/staff/unanswered")).text()
    assert "<svg" in html and "医保看病" in html and "<rect" in html
    assert "14092919580307042X" not in html and "140929************" in html
    assert re.search(r"<strong>2次</strong> · 其他：明天(会)?下雨吗", html)
    assert re.search(r"<strong>2次</strong> · 医保看病：医保卡丢了", html)
    export = await client.get("/staff/unanswered/export.yml")
    text = await export.text()
    assert "- intent: ask_medical" in text and "    - 医保卡丢了咋补办啊" in text
    import yaml

    assert yaml.safe_load(text)["nlu"]  # valid YAML, ready for data/nlu/
    ids = re.findall(r'name="ids" value="([^"]+)"', html)
    await client.post("/staff/unanswered/handled", data={"csrf": token, "ids": ids[0]})
    with db.session_scope() as s:
        assert len(s.scalars(select(Unanswered).where(Unanswered.handled.is_(True))).all()) == 2


async def test_ticket_reply_and_close(client, users, wechat_api):
    with db.session_scope() as s:
        web_ticket = tickets.open_ticket(s, "web-1", "web", ["居民：转人工"], None).id
        wechat_ticket = tickets.open_ticket(s, "wechat:oAbc", "wechat", ["居民：找工作人员"], "GHY00001").id
    token = await signed_in(client)
    html = await (await client.get("/staff/tickets")).text()
    assert f"工单 {web_ticket}" in html and "已核验住户 GHY00001" in html
    await client.post(f"/staff/tickets/{web_ticket}/reply", data={"csrf": token, "text": "您好，我是社区小王"})
    await client.post(f"/staff/tickets/{wechat_ticket}/reply", data={"csrf": token, "text": "微信这边收到"})
    assert wechat_api.sent[-1][1] == {"touser": "oAbc", "msgtype": "text", "text": {"content": "微信这边收到"}}
    await client.post(f"/staff/tickets/{web_ticket}/close", data={"csrf": token})
    with db.session_scope() as s:
        ticket = s.get(Ticket, web_ticket)
        assert ticket.status == "closed" and ticket.closed_by == "staff:clerk1"
        messages = tickets.staff_messages_after(s, "web-1", 0)
    assert [m["text"] for m in messages] == ["您好，我是社区小王", "工作人员已结束这次对话。您可以继续问安居助手。"]


def test_create_admin_command(demo_database, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert staff_command(["create-admin", "boss", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert staff_command(["create-admin", "boss2", "--password-stdin"]) == 1
    with db.session_scope() as s:
        assert s.scalars(select(StaffUser.role).where(StaffUser.username == "boss")).one() == "admin"


async def test_staff_see_households_locked_again_and_again(client, users, demo_database):
    from bot import repository

    now = utcnow()
    with db.session_scope() as s:
        for minutes in (0, 16):
            for _ in range(5):
                repository.verify_head(
                    s, f"guess-{minutes}", "张三", "000000", 5, 15, now + dt.timedelta(minutes=minutes)
                )
    await signed_in(client)
    html = await (await client.get("/staff/households")).text()
    assert "多次被锁定的住户" in html and "GHY00001" in html and "125447" not in html
