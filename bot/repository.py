"""Household data access. Every function takes the session first; the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bot.models import AuditEntry, Household, Member, VerificationLock, utcnow
from bot.rules import HouseholdFacts, MemberFacts


@dataclass(frozen=True)
class VerificationResult:
    household_id: str | None  # set when verified
    locked_until: dt.datetime | None  # set when this attempt is refused because of a lock
    failures_left: int


def conversation_key(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def household_key(household_id: str) -> str:
    return f"household:{household_id}"


def lock_of(session: Session, keys: Iterable[str], now: dt.datetime | None = None) -> dt.datetime | None:
    """The latest lock expiry among `keys` that is still in force, or None."""
    now = now or utcnow()
    keys = list(keys)
    if not keys:
        return None
    locks = session.scalars(select(VerificationLock).where(VerificationLock.key.in_(keys))).all()
    active = [lock.locked_until for lock in locks if lock.locked_until and lock.locked_until > now]
    return max(active) if active else None


MAX_LOCK_MINUTES = 24 * 60


def lock_minutes_for(lock_count: int, lock_minutes: int) -> int:
    """The first lock lasts `lock_minutes`; each further lock of the same key twice as long, up to a day."""
    return min(MAX_LOCK_MINUTES, lock_minutes * 2 ** max(0, lock_count - 1))


def verify_head(
    session: Session,
    conversation_id: str,
    head_name: str,
    id_suffix: str,
    max_failures: int,
    lock_minutes: int,
    now: dt.datetime | None = None,
) -> VerificationResult:
    """Checks the head's name and the last 6 characters of the head's ID number.

    A wrong answer counts against the conversation and every household whose head has that name; `max_failures` in a
    row lock them, for `lock_minutes` the first time and twice as long each time after. A success resets the counts.
    The result never tells whether the name exists, nor whether that household is locked: a new conversation trying a
    locked household hears the same "wrong" as for an unknown name (and the code is not even compared)."""
    now = now or utcnow()
    name = head_name.strip()
    suffix = id_suffix.strip().upper()
    conversation = conversation_key(conversation_id)
    locked = lock_of(session, [conversation], now)
    if locked:
        return VerificationResult(None, locked, 0)
    candidates = session.scalars(select(Household).where(Household.head_name == name)).all()
    open_candidates = [h for h in candidates if lock_of(session, [household_key(h.id)], now) is None]
    # compare every candidate in constant time, so timing does not tell how many share the name
    match = None
    for household in open_candidates:
        if hmac.compare_digest(household.head_id_number[-6:].upper().encode(), suffix.encode()) and match is None:
            match = household
    if match is not None:
        for key in (conversation, household_key(match.id)):
            lock = session.get(VerificationLock, key)
            if lock is not None:
                lock.failures, lock.locked_until, lock.lock_count = 0, None, 0
        return VerificationResult(match.id, None, max_failures)
    failures = 0
    for key in [conversation] + [household_key(h.id) for h in open_candidates]:
        lock = session.get(VerificationLock, key) or VerificationLock(key=key, failures=0, lock_count=0)
        session.add(lock)
        if lock.locked_until and lock.locked_until <= now:
            lock.failures, lock.locked_until = 0, None  # an expired lock starts a new count
        lock.failures = (lock.failures or 0) + 1
        if lock.failures >= max_failures:
            lock.lock_count = (lock.lock_count or 0) + 1
            lock.locked_until = now + dt.timedelta(minutes=lock_minutes_for(lock.lock_count, lock_minutes))
        if key == conversation:
            failures = lock.failures
    session.flush()
    locked = lock_of(session, [conversation], now)
    return VerificationResult(None, locked, max(0, max_failures - failures))


def repeatedly_locked(session: Session, at_least: int = 2) -> List[VerificationLock]:
    """Households locked again and again: someone may be guessing. The staff console lists them."""
    return list(
        session.scalars(
            select(VerificationLock)
            .where(VerificationLock.key.like("household:%"), VerificationLock.lock_count >= at_least)
            .order_by(VerificationLock.lock_count.desc())
        )
    )


def household_with_members(session: Session, household_id: str) -> Household | None:
    return session.scalars(
        select(Household).where(Household.id == household_id).options(selectinload(Household.members))
    ).first()


def facts_of(household: Household) -> HouseholdFacts:
    """The plain data the eligibility rules read."""
    return HouseholdFacts(
        settlement=household.settlement,
        origin_village=household.origin_village,
        household_type=household.household_type,
        monitoring_status=household.monitoring_status,
        members=tuple(
            MemberFacts(
                name=m.name,
                relation=m.relation,
                is_labour=m.is_labour,
                work_region=m.work_region,
                months_employed=m.months_employed,
                got_transport_subsidy=m.got_transport_subsidy,
                got_employment_award=m.got_employment_award,
                insurance_category=m.insurance_category,
                insured=m.insured,
                school_stage=m.school_stage,
            )
            for m in household.members
        ),
    )


def audit(
    session: Session,
    channel: str,
    conversation_id: str,
    household_id: str,
    shown: List[str],
    actor: str = "resident",
    searched: str = "",
) -> None:
    session.add(
        AuditEntry(
            channel=channel or "unknown",
            conversation_id=conversation_id,
            household_id=household_id,
            shown=",".join(shown),
            actor=actor,
            searched=searched[:64],
        )
    )


def audit_list(session: Session, actor: str, household_ids: Sequence[str], shown: str, searched: str = "") -> None:
    """A staff list view: a row for each household it showed, or one row without a household when a search found none
    (that nothing matched is an answer too)."""
    for household_id in household_ids or [""]:
        audit(session, "staff", actor, household_id, [shown], actor=actor, searched=searched)


def find_households(session: Session, q: str, limit: int = 50) -> List[Household]:
    """Households whose 户编号 is `q`, whose head or a member has `q` in the name, or (6 characters) whose head's or a
    member's ID number ends with `q`. `%` and `_` in `q` are themselves, not LIKE wildcards."""
    q = q.strip()
    if not q:
        return []
    conditions = [Household.id == q, Household.head_name.contains(q, autoescape=True)]
    member_match = [Member.name.contains(q, autoescape=True)]
    if len(q) == 6:
        conditions.append(Household.head_id_number.endswith(q.upper(), autoescape=True))
        member_match.append(Member.id_number.endswith(q.upper(), autoescape=True))
    conditions.append(Household.id.in_(select(Member.household_id).where(or_(*member_match))))
    return list(session.scalars(select(Household).where(or_(*conditions)).order_by(Household.id).limit(limit)))


def recent_audit(session: Session, limit: int = 500) -> List[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))


def member_names(session: Session, household_id: str) -> List[str]:
    return list(session.scalars(select(Member.name).where(Member.household_id == household_id)))
