"""Staff accounts: scrypt password hashes, server-side sessions, CSRF tokens and lockout after failed logins.
Functions take the SQLAlchemy session first; the caller owns the transaction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Dict, List

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import StaffSession, StaffUser, utcnow

ROLES = ("staff", "admin")
_N, _R, _P = 2**14, 8, 1
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15


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


def validate_new_account(username: str, password: str, role: str) -> str | None:
    """A reason in Chinese why the account cannot be created, or None."""
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").isalnum():
        return "用户名只能用字母、数字、下划线和点，最多64个字符"
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


@dataclass(frozen=True)
class LoginResult:
    user: StaffUser | None
    message: str  # shown to the person at the login form
    locked_until: dt.datetime | None = None


def authenticate(session: Session, username: str, password: str, now: dt.datetime | None = None) -> LoginResult:
    now = now or utcnow()
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None or not user.active:
        check_password(password, _DUMMY_HASH)
        return LoginResult(None, "用户名或密码不对")
    if user.locked_until and user.locked_until > now:
        return LoginResult(None, f"登录失败次数太多，账号已锁定，请{LOCK_MINUTES}分钟后再试", user.locked_until)
    if not check_password(password, user.password_hash):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
            return LoginResult(None, f"登录失败次数太多，账号已锁定，请{LOCK_MINUTES}分钟后再试", user.locked_until)
        return LoginResult(None, "用户名或密码不对")
    user.failed_logins, user.locked_until = 0, None
    return LoginResult(user, "")


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
    session: Session, token: str | None, minutes: int, now: dt.datetime | None = None
) -> StaffSession | None:
    """The live session for a cookie token, extended by `minutes`; expired sessions are deleted."""
    if not token:
        return None
    now = now or utcnow()
    found = session.get(StaffSession, _token_hash(token))
    if found is None:
        return None
    if found.expires_at <= now or not found.user.active:
        session.delete(found)
        return None
    found.expires_at = now + dt.timedelta(minutes=minutes)
    return found


def end_session(session: Session, token: str | None) -> None:
    if token:
        found = session.get(StaffSession, _token_hash(token))
        if found is not None:
            session.delete(found)


def list_users(session: Session) -> List[Dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "role": u.role, "active": u.active}
        for u in session.scalars(select(StaffUser).order_by(StaffUser.id))
    ]


def disable_user(session: Session, user_id: int, by_user_id: int) -> bool:
    """Disables an account; nobody can disable their own. False when nothing changed."""
    user = session.get(StaffUser, user_id)
    if user is None or user.id == by_user_id:
        return False
    user.active = False
    return True
