"""The staff console's handlers. Every route but the login form needs a signed-in staff member; every POST needs the
session's CSRF token and, when the browser sends an Origin, this site's origin."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import re
import secrets
import uuid
from pathlib import Path
from typing import Any, Dict, List

import jinja2
from aiohttp import web
from markupsafe import escape

from bot import accounts, db, knowledge, repository, rules, throttle, tickets
from bot.clients import keys, wechat
from bot.clients.rasa import RasaUnavailable
from bot.models import utcnow
from bot.privacy import mask_id, mask_phone
from bot.staff import forms

logger = logging.getLogger(__name__)
COOKIE = "anju_staff"
LOGIN_CSRF_COOKIE = "anju_login_csrf"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    staff = request.get("staff")
    html = TEMPLATES.get_template(template).render(
        user=staff["user"] if staff else None,
        csrf=staff["csrf"] if staff else context.pop("csrf", ""),
        open_tickets=staff["open_tickets"] if staff else 0,
        **context,
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


async def run_db(fn, *args):
    """`fn(session, *args)` in one transaction, in a worker thread so the event loop keeps answering residents."""
    return await asyncio.to_thread(db.run, fn, *args)


def small_int(value: object) -> int | None:
    """A page number or a database id from a query or a form: ASCII digits only ("²".isdigit() is true, but int()
    refuses it), at most 9 of them (any integer column holds that)."""
    text = str(value or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


def page_number(request: web.Request) -> int:
    return small_int(request.query.get("page")) or 1


# ---------------------------------------------------------------- the gate: sessions, CSRF, origin


def _same_origin(request: web.Request) -> bool:
    """A cross-site POST names its own origin and is refused. Our pages send `Referrer-Policy: no-referrer`, under
    which browsers send `Origin: null` for their own form posts: those pass here and still need the CSRF token."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return origin.split("://", 1)[-1] == request.host


@web.middleware
async def staff_gate(request: web.Request, handler):
    if not request.path.startswith("/staff"):
        return await handler(request)
    if request.method == "POST" and not _same_origin(request):
        return web.Response(status=403, text="跨站请求已拒绝", content_type="text/plain", charset="utf-8")
    if request.path == "/staff/login":
        return await handler(request)
    settings = request.app[keys.SETTINGS]
    token = request.cookies.get(COOKIE)

    def lookup(session):
        found = accounts.session_for(session, token, settings.staff_session_minutes, settings.staff_session_max_hours)
        if found is None:
            return None
        user = found.user
        return {
            "user": {"id": user.id, "username": user.username, "role": user.role},
            "csrf": found.csrf_token,
            "open_tickets": tickets.count_open(session),
        }

    staff = await run_db(lookup)
    if staff is None:
        if request.method == "GET":
            raise web.HTTPFound("/staff/login")
        return web.Response(status=403, text="请先登录", content_type="text/plain", charset="utf-8")
    if request.method == "POST":
        form = await forms.posted(request)
        if not forms.same_token(form.get("csrf"), staff["csrf"]):
            return web.Response(
                status=403, text="表单已过期，请刷新页面再试", content_type="text/plain", charset="utf-8"
            )
        request["form"] = form
    request["staff"] = staff
    return await handler(request)


def require_admin(request: web.Request) -> None:
    if request["staff"]["user"]["role"] != "admin":
        raise web.HTTPForbidden(text="只有管理员可以看这一页")


# ---------------------------------------------------------------- login and logout


def client_address(request: web.Request) -> str | None:
    """The browser's address: the peer, or what a trusted proxy (ANJU_TRUSTED_PROXIES) says in X-Forwarded-For."""
    trusted = request.app[keys.THROTTLE].trusted
    return throttle.client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)


def _from_trusted_proxy(request: web.Request) -> bool:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in network for network in request.app[keys.THROTTLE].trusted)


def over_https(request: web.Request) -> bool:
    """The browser reached us over HTTPS: directly, or through a trusted proxy that says so in X-Forwarded-Proto."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and _from_trusted_proxy(request)


def secure_cookies(request: web.Request) -> bool:
    return request.app[keys.SETTINGS].staff_cookie_secure or over_https(request)


async def login_form(request: web.Request) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", title="登录", csrf=token)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/staff/login", secure=secure_cookies(request)
    )
    return response


async def login(request: web.Request) -> web.Response:
    form = await forms.posted(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not forms.same_token(form.get("csrf"), cookie):
        return web.Response(status=403, text="表单已过期，请刷新页面再试", content_type="text/plain", charset="utf-8")
    username, password = str(form.get("username", "")).strip()[:200], str(form.get("password", ""))
    settings = request.app[keys.SETTINGS]
    result = await asyncio.to_thread(
        accounts.log_in, username, password, client_address(request), settings.staff_session_minutes
    )
    if result.token is None:
        return render(
            request, "login.html", status=401, title="登录", csrf=cookie, error=result.message, username=username
        )
    response = web.HTTPFound("/staff")
    # the browser keeps the cookie as long as the server could honour it; the server ends it earlier when idle
    response.set_cookie(
        COOKIE, result.token, httponly=True, samesite="Strict", path="/", secure=secure_cookies(request),
        max_age=int(settings.staff_session_max_hours * 3600),
    )  # fmt: skip
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/staff/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE)
    await run_db(lambda s: accounts.end_session(s, token))
    response = web.HTTPFound("/staff/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# ---------------------------------------------------------------- FAQ search and asking the assistant


def _hits(request: web.Request, q: str) -> List[Dict[str, str]]:
    kb = knowledge.load()
    placeholders = request.app[keys.SETTINGS].contact_placeholders()
    out = []
    for hit in request.app[keys.FAQ].search(q, limit=5):
        entry = kb.entries.get(hit.entry_id)
        if entry is None:
            continue
        reply = kb.reply(entry.intent, {}, None, placeholders)
        source = kb.sources[entry.source["id"]]
        out.append(
            {
                "id": entry.id,
                "title": entry.title,
                "text": reply.text,
                "source": f"{source['publisher']}《{source['title']}》（{source['date']}），"
                + f"第{'、'.join(map(str, entry.source['paras']))}段",
            }
        )
    return out


async def home(request: web.Request) -> web.Response:
    q = forms.query_text(request, "q", 200)
    return render(request, "home.html", title="查答案", q=q, hits=_hits(request, q) if q else [])


async def ask(request: web.Request) -> web.Response:
    message = str(request["form"].get("message", "")).strip()[:2000]
    reply = ""
    if message:
        sender = f"staff-{request['staff']['user']['username']}-{uuid.uuid4().hex[:8]}"
        try:
            replies = await request.app[keys.RASA].send(sender, message, "staff")
            reply = "\n".join(r.get("text", "") for r in replies) or "（助手没有回答）"
        except RasaUnavailable:
            reply = "助手暂时连不上，请稍后再试。"
    return render(request, "home.html", title="查答案", asked=message, reply=reply)


# ---------------------------------------------------------------- households


def _household_row(h) -> Dict[str, str]:
    return {
        "id": h.id,
        "head_name": h.head_name,
        "masked_id": mask_id(h.head_id_number),
        "settlement": h.settlement,
        "monitoring_status": h.monitoring_status,
    }


async def households(request: web.Request) -> web.Response:
    """The search and the list of households locked again and again; whatever they show is audited."""
    q = forms.query_text(request, "q", 64)
    actor = f"staff:{request['staff']['user']['username']}"

    def load(session):
        results = [_household_row(h) for h in repository.find_households(session, q)] if q else []
        locked = [
            {
                "household_id": lock.key.split(":", 1)[1],
                "lock_count": lock.lock_count,
                "locked_until": lock.locked_until.strftime("%Y-%m-%d %H:%M") if lock.locked_until else "",
            }
            for lock in repository.repeatedly_locked(session)
        ]
        if q:
            repository.audit_list(session, actor, [h["id"] for h in results], "staff_search", searched=q)
        if locked:
            repository.audit_list(session, actor, [lock["household_id"] for lock in locked], "staff_locked_list")
        return results, locked

    results, locked = await run_db(load)
    return render(request, "households.html", title="查住户", q=q, results=results, locked=locked)


async def household(request: web.Request) -> web.Response:
    household_id = forms.path_text(request, "household_id")
    username = request["staff"]["user"]["username"]
    policy = rules.PolicyFacts.from_knowledge(knowledge.load().entries)

    def load(session):
        h = repository.household_with_members(session, household_id)
        if h is None:
            return None
        repository.audit(session, "staff", f"staff:{username}", h.id, ["staff_lookup"], actor=f"staff:{username}")
        return _household_detail(h, policy)

    detail = await run_db(load)
    if detail is None:
        raise web.HTTPNotFound(text="没有这个户编号")
    return render(request, "households.html", title=detail["head_name"], household=detail, rules=rules.RULES)


def _household_detail(h, policy: rules.PolicyFacts) -> Dict[str, Any]:
    """What the staff household page shows: masked numbers, and each member's decision under every declared rule."""
    facts = repository.facts_of(h)
    members = []
    for row, m in zip(h.members, facts.members, strict=True):
        decided = rules.member_decisions(m, facts, policy)
        members.append(
            {
                "name": m.name,
                "relation": m.relation,
                "masked_id": mask_id(row.id_number),
                "work": f"{m.work_region}，{m.months_employed}个月" if m.work_region != rules.UNEMPLOYED else "未就业",
                "decisions": {rule_id: decision.reason for rule_id, (_, decision) in decided.items()},
            }
        )
    return {
        "id": h.id,
        "head_name": h.head_name,
        "masked_id": mask_id(h.head_id_number),
        "masked_phone": mask_phone(h.phone) if h.phone else "",
        "settlement": h.settlement,
        "address": h.address,
        "origin_village": h.origin_village,
        "household_type": h.household_type,
        "monitoring_status": h.monitoring_status,
        "members": members,
    }


async def audit_log(request: web.Request) -> web.Response:
    require_admin(request)

    def load(session):
        return [
            {
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "actor": e.actor,
                "channel": e.channel,
                "conversation_id": e.conversation_id,
                "household_id": e.household_id,
                "shown": e.shown,
                "searched": e.searched,
            }
            for e in repository.recent_audit(session)
        ]

    return render(request, "audit.html", title="查询记录", entries=await run_db(load))


# ---------------------------------------------------------------- accounts (admin)


async def users(request: web.Request) -> web.Response:
    require_admin(request)
    listing = await run_db(accounts.list_users)
    return render(request, "users.html", title="账号", users=listing, notice=request.query.get("notice"))


async def create_user(request: web.Request) -> web.Response:
    require_admin(request)
    form = request["form"]
    username, password, role = (
        str(form.get("username", "")).strip(),
        str(form.get("password", "")),
        str(form.get("role")),
    )

    def create(session):
        try:
            accounts.create_user(session, username, password, role)
            return ""
        except ValueError as e:
            return str(e)

    problem = await run_db(create)
    if problem:
        listing = await run_db(accounts.list_users)
        return render(request, "users.html", status=400, title="账号", users=listing, error=problem)
    raise web.HTTPFound(f"/staff/users?notice=已创建账号 {username}")


async def disable_user(request: web.Request) -> web.Response:
    require_admin(request)
    user_id = int(request.match_info["user_id"])

    await run_db(accounts.disable_user, user_id, request["staff"]["user"]["id"])
    raise web.HTTPFound("/staff/users?notice=已停用")


# ---------------------------------------------------------------- unanswered questions


def chart_svg(items: List, weeks: int = 8, now: dt.datetime | None = None) -> str:
    """Stacked bars of unanswered questions per week, one colour and one label per topic (numbers are written on
    the bars, so the chart does not depend on colour alone)."""
    now = now or utcnow()
    start = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    week_starts = [start - dt.timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]
    topics = sorted({i.topic or "其他" for i in items})
    palette = ["#0b4f8a", "#0b5e2f", "#8a3b0b", "#5b2c83", "#7a6300", "#2f4f4f", "#8b1a4a", "#3b3b3b"]
    counts = {(w, t): 0 for w in range(weeks) for t in topics}
    for item in items:
        for w, ws in enumerate(week_starts):
            if ws <= item.at < ws + dt.timedelta(weeks=1):
                counts[(w, item.topic or "其他")] += 1
    top = max([sum(counts[(w, t)] for t in topics) for w in range(weeks)] + [1])
    width, height, left, bottom, bar = 720, 320, 40, 40, 56
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 30 * ((len(topics) + 3) // 4)}" '
        f'role="img" aria-label="每周没答上的问题，按话题"><rect width="100%" height="100%" fill="#ffffff"/>'
    ]
    for w, ws in enumerate(week_starts):
        x = left + w * (bar + 28)
        y = height - bottom
        for ti, topic in enumerate(topics):
            n = counts[(w, topic)]
            if not n:
                continue
            h = (height - bottom - 20) * n / top
            y -= h
            colour = palette[ti % len(palette)]
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{colour}">'
                         f"<title>{escape(topic)}：{n}</title></rect>")  # fmt: skip
            if h >= 16:
                parts.append(f'<text x="{x + bar / 2}" y="{y + h / 2 + 5:.1f}" fill="#ffffff" font-size="14" '
                             f'text-anchor="middle">{n}</text>')  # fmt: skip
        parts.append(f'<text x="{x + bar / 2}" y="{height - bottom + 18}" font-size="12" text-anchor="middle" '
                     f'fill="#1a1a1a">{ws:%m-%d}</text>')  # fmt: skip
    for ti, topic in enumerate(topics):
        lx, ly = left + (ti % 4) * 170, height + 10 + 30 * (ti // 4)
        colour = palette[ti % len(palette)]
        parts.append(f'<rect x="{lx}" y="{ly}" width="16" height="16" fill="{colour}"/><text x="{lx + 22}" '
                     f'y="{ly + 13}" font-size="14" fill="#1a1a1a">{escape(topic)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


async def unanswered(request: web.Request) -> web.Response:
    """One page of groups, and the chart: all of it off the event loop (the groups are kept as questions arrive)."""
    number = page_number(request)

    def load(session):
        groups = tickets.unanswered_groups(session, number)
        chart = chart_svg(tickets.unanswered_since(session, utcnow() - dt.timedelta(weeks=8)))
        return groups, chart

    groups, chart = await run_db(load)
    return render(request, "unanswered.html", title="没答上的问题", groups=groups, chart=chart)


async def mark_handled(request: web.Request) -> web.Response:
    form = request["form"]
    group_id, up_to, number = (
        small_int(form.get("group")),
        small_int(form.get("up_to")),
        small_int(form.get("page")) or 1,
    )
    if group_id is not None and up_to is not None:
        await run_db(tickets.mark_group_handled, group_id, up_to)
    raise web.HTTPFound(f"/staff/unanswered?page={number}")


async def export_unanswered(request: web.Request) -> web.Response:
    """The open questions as Rasa NLU training data, one block per guessed intent, ready to review and paste."""
    kb = knowledge.load()
    by_title = {e.title: e.intent for e in kb.entries.values()}

    def build(session) -> str:
        blocks: Dict[str, Dict[str, None]] = {}  # intent → its texts, in order, each once
        for text, topic in tickets.open_unanswered_texts(session):
            blocks.setdefault(by_title.get(topic, "out_of_scope"), {})[" ".join(text.split())] = None
        lines = [
            "# 没答上的问题，按助手最接近的猜测分组。请核对每句的意图，再放进 data/nlu/ 对应的文件。",
            'version: "3.1"',
            "nlu:",
        ]
        for intent, texts in sorted(blocks.items()):
            lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
        return "\n".join(lines) + "\n"

    return web.Response(
        text=await run_db(build),
        content_type="text/yaml",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="unanswered.yml"'},
    )


# ---------------------------------------------------------------- handoff tickets


async def ticket_list(request: web.Request) -> web.Response:
    number = page_number(request)

    def load(session):
        page = tickets.tickets_page(session, "open", number)
        items = [
            {
                "id": t.id,
                "channel": t.channel,
                "created": t.created_at.strftime("%Y-%m-%d %H:%M"),
                "household_id": t.household_id,
                "transcript": t.transcript,
                "messages": [{"author": m.author, "text": m.text} for m in t.messages],
            }
            for t in page.items
        ]
        return tickets.Page(items, page.number, page.pages, page.total)

    return render(request, "tickets.html", title="转人工", page=await run_db(load), notice=request.query.get("notice"))


async def ticket_reply(request: web.Request) -> web.Response:
    ticket_id = int(request.match_info["ticket_id"])
    text = str(request["form"].get("text", "")).strip()[:2000]
    author = f"staff:{request['staff']['user']['username']}"
    number = small_int(request["form"].get("page")) or 1
    if not text:
        raise web.HTTPFound(f"/staff/tickets?page={number}")

    def reply(session):
        ticket = tickets.staff_reply(session, ticket_id, author, text)
        return ticket and (ticket.channel, ticket.conversation_id)

    found = await run_db(reply)
    if found is None:
        raise web.HTTPNotFound(text="工单不存在或已结束")
    channel, conversation_id = found
    if channel == "wechat" and conversation_id.startswith("wechat:"):
        await _send_wechat(request.app, conversation_id.split(":", 1)[1], text)
    raise web.HTTPFound(f"/staff/tickets?page={number}&notice=已发送#ticket-{ticket_id}")


async def ticket_close(request: web.Request) -> web.Response:
    ticket_id = int(request.match_info["ticket_id"])
    author = f"staff:{request['staff']['user']['username']}"
    farewell = "工作人员已结束这次对话。您可以继续问安居助手。"

    def close(session):
        ticket = tickets.staff_reply(session, ticket_id, author, farewell, close=True)
        return ticket and (ticket.channel, ticket.conversation_id)

    found = await run_db(close)
    if found and found[0] == "wechat" and found[1].startswith("wechat:"):
        await _send_wechat(request.app, found[1].split(":", 1)[1], farewell)
    raise web.HTTPFound("/staff/tickets?notice=已结束工单")


async def _send_wechat(app: web.Application, open_id: str, text: str) -> None:
    try:
        await app[keys.WECHAT_API].send_text(open_id, text)
    except (wechat.WeChatError, OSError, asyncio.TimeoutError) as e:
        logger.error("could not send a staff reply through WeChat: %s", e)
