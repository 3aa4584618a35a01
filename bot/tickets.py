"""Handoff tickets and unanswered questions: shared by the action server (which opens them) and the staff console.
Functions take the session first; the caller owns the transaction. Every stored text is masked first."""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.models import Ticket, TicketMessage, Unanswered, utcnow
from bot.privacy import mask_text

RESIDENT = "resident"


def log_unanswered(
    session: Session, channel: str, conversation_id: str, text: str, kind: str, topic: str = ""
) -> Unanswered:
    item = Unanswered(
        channel=channel or "unknown",
        conversation_id=conversation_id,
        text=mask_text(text)[:2000],
        kind=kind,
        topic=topic,
    )
    session.add(item)
    return item


def open_ticket(
    session: Session, conversation_id: str, channel: str, transcript: Sequence[str], household_id: str | None
) -> Ticket:
    """The open ticket of the conversation, or a new one."""
    existing = open_ticket_for(session, conversation_id)
    if existing is not None:
        return existing
    ticket = Ticket(
        conversation_id=conversation_id,
        channel=channel or "unknown",
        household_id=household_id,
        transcript=mask_text("\n".join(transcript))[-8000:],
    )
    session.add(ticket)
    session.flush()
    return ticket


def open_ticket_for(session: Session, conversation_id: str) -> Ticket | None:
    return session.scalars(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status == "open")
    ).first()


def route_to_open_ticket(session: Session, conversation_id: str, message: str) -> bool:
    """Copies the resident's message into the conversation's open ticket; False when there is none."""
    ticket = open_ticket_for(session, conversation_id)
    if ticket is None:
        return False
    add_message(session, ticket, RESIDENT, message)
    return True


def add_message(session: Session, ticket: Ticket, author: str, text: str) -> TicketMessage:
    message = TicketMessage(ticket_id=ticket.id, author=author, text=mask_text(text)[:2000])
    session.add(message)
    session.flush()
    return message


def close_ticket(session: Session, ticket: Ticket, by: str, now: dt.datetime | None = None) -> None:
    ticket.status, ticket.closed_at, ticket.closed_by = "closed", now or utcnow(), by


def list_tickets(session: Session, status: str | None = "open") -> List[Ticket]:
    query = select(Ticket).options(selectinload(Ticket.messages)).order_by(Ticket.created_at.desc())
    if status:
        query = query.where(Ticket.status == status)
    return list(session.scalars(query))


def staff_messages_after(session: Session, conversation_id: str, after_id: int) -> List[Dict]:
    """What staff said to this conversation since message `after_id`, for the resident's page to show."""
    rows = session.execute(
        select(TicketMessage.id, TicketMessage.text, TicketMessage.at)
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            Ticket.conversation_id == conversation_id,
            TicketMessage.id > after_id,
            TicketMessage.author != RESIDENT,
        )
        .order_by(TicketMessage.id)
    ).all()
    return [{"id": r.id, "text": r.text, "at": r.at.isoformat() + "Z"} for r in rows]


def count_open(session: Session) -> int:
    return session.scalar(select(func.count(Ticket.id)).where(Ticket.status == "open")) or 0


def staff_reply(session: Session, ticket_id: int, author: str, text: str, close: bool = False) -> Ticket | None:
    """Adds a staff message to an open ticket (and closes it); None when the ticket is not open."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.status != "open":
        return None
    add_message(session, ticket, author, text)
    if close:
        close_ticket(session, ticket, author)
    return ticket


def open_unanswered(session: Session) -> List[Unanswered]:
    return list(session.scalars(select(Unanswered).where(Unanswered.handled.is_(False)).order_by(Unanswered.at.desc())))


def unanswered_since(session: Session, since: dt.datetime) -> List[Unanswered]:
    return list(session.scalars(select(Unanswered).where(Unanswered.at >= since)))


def mark_handled(session: Session, ids: Sequence[int]) -> None:
    for item in session.scalars(select(Unanswered).where(Unanswered.id.in_(list(ids)))):
        item.handled = True
