"""Database tables: households and members from the county ledger (台账), the audit log, verification lockouts, staff
accounts with their sessions and login throttles, unanswered questions and handoff tickets."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Household(Base):
    __tablename__ = "households"

    id = Column(String(32), primary_key=True)  # 户编号
    head_name = Column(String(64), nullable=False, index=True)  # 户主姓名
    head_id_number = Column(String(18), nullable=False)  # 户主身份证号: never shown, only its masked form
    settlement = Column(String(64), nullable=False)  # 安置点
    address = Column(String(200), nullable=False, default="")  # 住址
    origin_village = Column(String(64), nullable=False, default="")  # 迁出村
    relocation_year = Column(Integer, nullable=True)  # 搬迁年份
    household_type = Column(String(16), nullable=False)  # 户类型: 脱贫户 / 一般搬迁户
    monitoring_status = Column(String(16), nullable=False)  # 监测状态: 未纳入 / 监测中 / 已消除风险
    phone = Column(String(32), nullable=False, default="")  # 联系电话
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    members = relationship(
        "Member", back_populates="household", order_by="Member.position", cascade="all, delete-orphan"
    )


class Member(Base):
    __tablename__ = "members"

    id_number = Column(String(18), primary_key=True)  # 身份证号
    household_id = Column(String(32), ForeignKey("households.id", ondelete="CASCADE"), nullable=False, index=True)
    position = Column(Integer, nullable=False, default=0)  # order in the ledger
    name = Column(String(64), nullable=False)
    relation = Column(String(16), nullable=False)  # 与户主关系
    birth_date = Column(Date, nullable=False)  # from the ID number
    sex = Column(String(2), nullable=False)  # from the ID number
    is_labour = Column(Boolean, nullable=False)  # 是否劳动力
    work_region = Column(String(16), nullable=False)  # 就业地点: 未就业 / 县内 / 县外省内 / 省外
    months_employed = Column(Integer, nullable=False, default=0)  # 本年就业月数
    got_transport_subsidy = Column(Boolean, nullable=False, default=False)  # 已领交通补贴
    got_employment_award = Column(Boolean, nullable=False, default=False)  # 已领就业奖补
    insurance_category = Column(String(16), nullable=False)  # 医保类别
    insured = Column(Boolean, nullable=False)  # 是否参保
    school_stage = Column(String(8), nullable=False, default="无")  # 在读学段
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    household = relationship("Household", back_populates="members")


class AuditEntry(Base):
    """Who saw which household's data, when, through which door. Holds no other personal data."""

    __tablename__ = "audit_log"

    id = Column(Integer, primary_key=True, autoincrement=True)
    at = Column(DateTime, nullable=False, default=utcnow, index=True)
    channel = Column(String(32), nullable=False)
    conversation_id = Column(String(128), nullable=False)
    household_id = Column(String(32), nullable=False, index=True)
    shown = Column(Text, nullable=False)  # what was shown: e.g. "subsidies,schools"
    actor = Column(String(64), nullable=False, default="resident")
    searched = Column(String(64), nullable=False, default="", server_default="")  # staff searches: the words typed


class VerificationLock(Base):
    """Wrong verification answers in a row, per conversation and per household, and the lock they lead to."""

    __tablename__ = "verification_locks"

    key = Column(String(200), primary_key=True)  # "conversation:<id>" or "household:<id>"
    failures = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime, nullable=True)
    lock_count = Column(Integer, nullable=False, default=0, server_default="0")  # locks so far: each lasts longer
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)


class StaffUser(Base):
    """A community staff account. Passwords are stored only as scrypt hashes (bot/accounts.py)."""

    __tablename__ = "staff_users"

    id = Column(Integer, primary_key=True, autoincrement=True)
    username = Column(String(64), nullable=False, unique=True)
    password_hash = Column(String(200), nullable=False)
    role = Column(String(16), nullable=False, default="staff")  # staff / admin
    active = Column(Boolean, nullable=False, default=True)
    # wrong passwords since the last login, from anywhere: shown to admins, never a lock (see LoginThrottle)
    failed_logins = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class LoginThrottle(Base):
    """Login attempts not (yet) proven right, per client address ("ip:<address>") and per username from that address
    ("user:<name>@<address>"); past a threshold each further attempt waits twice as long (bot/accounts.py)."""

    __tablename__ = "login_throttles"

    key = Column(String(200), primary_key=True)
    failures = Column(Integer, nullable=False, default=0)
    blocked_until = Column(DateTime, nullable=True)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "staff_sessions"

    token_hash = Column(String(64), primary_key=True)
    user_id = Column(Integer, ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    expires_at = Column(DateTime, nullable=False)

    user = relationship("StaffUser")


class Unanswered(Base):
    """A resident's message that fell to the fallback or out of scope, masked, for staff to review."""

    __tablename__ = "unanswered"

    id = Column(Integer, primary_key=True, autoincrement=True)
    at = Column(DateTime, nullable=False, default=utcnow, index=True)
    channel = Column(String(32), nullable=False)
    conversation_id = Column(String(128), nullable=False)
    text = Column(Text, nullable=False)  # masked
    kind = Column(String(16), nullable=False)  # nlu_fallback / out_of_scope / not_in_source
    topic = Column(String(64), nullable=False, default="")  # the model's best policy guess, for the weekly chart
    handled = Column(Boolean, nullable=False, default=False)
    # similar questions share a group, decided when the row is written (bot/tickets.py): the id of the group's first
    # question; its words (space-separated) are what later questions are compared with
    group_id = Column(Integer, nullable=True)
    words = Column(Text, nullable=False, default="", server_default="")

    __table_args__ = (Index("ix_unanswered_handled_group_id", "handled", "group_id"),)


class Ticket(Base):
    """A resident asked for a person: staff answer into the conversation until they close the ticket."""

    __tablename__ = "tickets"

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    household_id = Column(String(32), nullable=True)
    transcript = Column(Text, nullable=False)  # masked
    status = Column(String(16), nullable=False, default="open", index=True)  # open / closed
    created_at = Column(DateTime, nullable=False, default=utcnow)
    closed_at = Column(DateTime, nullable=True)
    closed_by = Column(String(64), nullable=True)

    messages = relationship("TicketMessage", back_populates="ticket", order_by="TicketMessage.id")


class TicketMessage(Base):
    __tablename__ = "ticket_messages"

    id = Column(Integer, primary_key=True, autoincrement=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    at = Column(DateTime, nullable=False, default=utcnow)
    author = Column(String(64), nullable=False)  # "resident" or "staff:<username>"
    text = Column(Text, nullable=False)  # masked

    ticket = relationship("Ticket", back_populates="messages")
