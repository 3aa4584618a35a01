"""Staff accounts: scrypt password hashes, server-side sessions, CSRF tokens, and login throttles per client address
and per username from that address (never a lock that a stranger could put on someone else's account).
Functions take the SQLAlchemy session first and the caller owns the transaction, except `log_in`, which runs the
password hash between two short transactions of its own."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Any, Dict, List

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot import db
from bot.models import LoginThrottle, StaffSession, StaffUser, utcnow

ROLES = ("staff", "admin")
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


# a hash to check against when the username does not exist, so timing does not tell which usernames are real
_DUMMY_HASH = hash_password(secrets.token_hex(8))


USERNAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


def username_problem(username: str) -> str | None:
    """Usernames are ASCII letters, digits, `_` and `.`: no look-alike letters from other scripts, nothing to escape."""
    if not USERNAME.fullmatch(username):
        return "用户名只能用英文字母、数字、下划线（_）和点（.），最多64个字符，不能有汉字、空格或其他符号"
    return None


def validate_new_account(username: str, password: str, role: str) -> str | None:
    """A reason in Chinese why the account cannot be created, or None."""
    problem = username_problem(username)
    if problem:
        return problem
    if len(password) < 10:
        return "密码至少10个字符"
    if role not in ROLES:
        return "角色只能是 staff 或 admin"
    return None


def create_user(session: Session, username: str, password: str, role: str = "staff") -> StaffUser:
    problem = validate_new_account(username, password, role)
    if problem:
        raise ValueError(problem)
    if session.scalars(select(StaffUser).where(StaffUser.username == username)).first():
        raise ValueError(f"用户名 {username} 已存在")
    user = StaffUser(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


# ---------------------------------------------------------------- logging in, throttled

# one answer for an unknown name, a wrong password and a throttled attempt: none tells which usernames exist
LOGIN_REFUSED = "用户名或密码不对。连续输错几次后，要等一会儿才能再试。"


@dataclass(frozen=True)
class ThrottleRule:
    """Past `threshold` attempts not proven right, each further attempt waits `first` and then twice as long as the
    one before, up to `longest`. A success starts the count over; so does a day without attempts."""

    prefix: str
    threshold: int
    first: dt.timedelta = dt.timedelta(minutes=1)
    longest: dt.timedelta = dt.timedelta(hours=1)

    def wait(self, failures: int) -> dt.timedelta | None:
        if failures < self.threshold:
            return None
        return min(self.longest, self.first * 2 ** min(failures - self.threshold, 16))


# a guesser gets 5 tries at a name from one address, 20 at any names; staff elsewhere are not affected
PER_NAME = ThrottleRule("user", threshold=5)  # per username from one address
PER_ADDRESS = ThrottleRule("ip", threshold=20)
FORGET_AFTER = dt.timedelta(days=1)


def address_key(address: str | None) -> str:
    """The client address as throttles count it: an IPv6 client by its /64, which one device can roam at will."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class LoginAttempt:
    """What `begin_login` decided before the password is checked."""

    address_key: str  # "ip:<address>": every name tried from there
    name_key: str  # "user:<name>@<address>"
    throttled: bool  # this attempt has to wait: refused whatever the password, and not counted
    password_hash: str  # the account's hash, or a dummy one (unknown, disabled, throttled): the same cost either way
    user_id: int | None  # None for an unknown or disabled account


# insert-or-leave, so that a row exists to lock and count before anyone reads it
_INSERT_OR_IGNORE = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def begin_login(session: Session, username: str, address: str | None, now: dt.datetime | None = None) -> LoginAttempt:
    """Counts this attempt against the client's address and against the username from that address, before the
    password is checked, in SQL (failures = failures + 1) on rows locked until commit: attempts arriving together are
    counted one after another, so a burst gets no more tries than attempts one at a time would. An attempt that has to
    wait is refused and not counted."""
    now = now or utcnow()
    where = address_key(address)
    from_address, name_from_address = f"{PER_ADDRESS.prefix}:{where}", f"{PER_NAME.prefix}:{username[:64]}@{where}"
    rules = {from_address: PER_ADDRESS, name_from_address: PER_NAME}
    keys = sorted(rules)  # always locked in the same order: two logins never wait for each other in a circle
    rows = [{"key": k, "failures": 0, "blocked_until": None, "updated_at": now} for k in keys]
    # rows nobody has tried from for FORGET_AFTER count as nothing (a stale count starts over at 1): the table keeps
    # only the last day's addresses, not every address that ever tried
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.updated_at < now - FORGET_AFTER,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),
            LoginThrottle.key.not_in(keys),
        )
    )
    upsert = _INSERT_OR_IGNORE[session.get_bind().dialect.name]
    session.execute(upsert(LoginThrottle).values(rows).on_conflict_do_nothing(index_elements=["key"]))
    blocked = session.scalars(
        select(LoginThrottle.blocked_until)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.key)
        .with_for_update()
    ).all()
    throttled = any(until is not None and until > now for until in blocked)
    if not throttled:
        stale = LoginThrottle.updated_at < now - FORGET_AFTER
        counted = update(LoginThrottle).values(
            failures=case((stale, 1), else_=LoginThrottle.failures + 1), updated_at=now
        )
        for key in keys:
            session.execute(counted.where(LoginThrottle.key == key))
        for key, failures in session.execute(
            select(LoginThrottle.key, LoginThrottle.failures).where(LoginThrottle.key.in_(keys))
        ):
            wait = rules[key].wait(failures)
            if wait is not None:  # lifted again if this attempt turns out right
                session.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(blocked_until=now + wait))
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)).first() if username else None
    known = user is not None and user.active
    return LoginAttempt(
        address_key=from_address,
        name_key=name_from_address,
        throttled=throttled,
        password_hash=user.password_hash if known and not throttled else _DUMMY_HASH,
        user_id=user.id if known else None,
    )


def finish_login(session: Session, attempt: LoginAttempt, password_ok: bool) -> StaffUser | None:
    """The signed-in user, or None. A wrong password stays counted (and adds to the account's failed_logins); a right
    one starts this name's count from this address over and gives the address its attempt back."""
    if attempt.throttled or attempt.user_id is None:
        return None
    if not password_ok:
        failed = StaffUser.failed_logins + 1
        session.execute(update(StaffUser).where(StaffUser.id == attempt.user_id).values(failed_logins=failed))
        return None
    session.execute(
        update(LoginThrottle).where(LoginThrottle.key == attempt.name_key).values(failures=0, blocked_until=None)
    )
    left = LoginThrottle.failures - 1  # others' wrong guesses from the same address still count
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == attempt.address_key, LoginThrottle.failures > 0)
        .values(
            failures=left, blocked_until=case((left < PER_ADDRESS.threshold, None), else_=LoginThrottle.blocked_until)
        )
    )
    session.execute(update(StaffUser).where(StaffUser.id == attempt.user_id).values(failed_logins=0))
    return session.get(StaffUser, attempt.user_id)


@dataclass(frozen=True)
class LoginResult:
    token: str | None  # the new session's cookie token
    message: str  # shown at the login form: the same for every refusal


def log_in(
    username: str,
    password: str,
    address: str | None,
    session_minutes: int,
    *,
    url: str | None = None,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Counts the attempt, checks the password, and starts a session. Every attempt runs one scrypt hash, whether the
    name is unknown, the attempt throttled or the password wrong, so neither the answer nor its time tells them apart.
    The hash (~50 ms) runs between two short transactions: on SQLite a write transaction holds the whole database."""
    with db.session_scope(url) as session:
        attempt = begin_login(session, username, address, now)
    password_ok = check_password(password, attempt.password_hash)
    with db.session_scope(url) as session:
        user = finish_login(session, attempt, password_ok)
        if user is None:
            return LoginResult(None, LOGIN_REFUSED)
        return LoginResult(start_session(session, user, session_minutes, now), "")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "ignore")).hexdigest()


def start_session(session: Session, user: StaffUser, minutes: int, now: dt.datetime | None = None) -> str:
    """A new session for `user`; returns the cookie token (only its hash is stored)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + dt.timedelta(minutes=minutes),
        )
    )
    return token


def session_for(
    session: Session, token: str | None, minutes: int, max_hours: float, now: dt.datetime | None = None
) -> StaffSession | None:
    """The live session for a cookie token, extended by `minutes` but never past `max_hours` after the login, however
    active it was; ended sessions are deleted."""
    if not token:
        return None
    now = now or utcnow()
    found = session.get(StaffSession, _token_hash(token))
    if found is None:
        return None
    ends = found.created_at + dt.timedelta(hours=max_hours)
    if found.expires_at <= now or ends <= now or not found.user.active:
        session.delete(found)
        return None
    found.expires_at = min(now + dt.timedelta(minutes=minutes), ends)
    return found


def end_session(session: Session, token: str | None) -> None:
    if token:
        found = session.get(StaffSession, _token_hash(token))
        if found is not None:
            session.delete(found)


def list_users(session: Session) -> List[Dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "role": u.role, "active": u.active, "failed_logins": u.failed_logins}
        for u in session.scalars(select(StaffUser).order_by(StaffUser.id))
    ]


def disable_user(session: Session, user_id: int, by_user_id: int) -> bool:
    """Disables an account; nobody can disable their own. False when nothing changed."""
    user = session.get(StaffUser, user_id)
    if user is None or user.id == by_user_id:
        return False
    user.active = False
    return True
