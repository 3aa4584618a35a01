"""The conversation's services on the database: tickets, unanswered questions, verification and audited household
lookups for one conversation (bot.dialogue.Services). Each call is its own short transaction."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, Dict, List, Sequence, Tuple

from sqlalchemy import func, select

from bot import db, repository, rules, tickets
from bot.models import Ticket, TicketMessage, Unanswered, utcnow
from bot.settings import Settings

# a code typed before the name, kept in this process's memory for a few minutes only: never in the tracker or database
_CODES: Dict[str, Tuple[str, float]] = {}
_CODES_LOCK = threading.Lock()
CODE_MEMORY_SECONDS = 300
# what one ticket keeps of the resident's messages (the rate limit allows one a second)
MAX_MESSAGES_PER_TICKET = 200


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


class DatabaseServices:
    def __init__(self, conversation_id: str, channel: str, settings: Settings, transcript: Sequence[str] = ()):
        self.conversation_id = conversation_id
        self.channel = channel or "unknown"
        self.settings = settings
        self.transcript: List[str] = list(transcript)
        self._ticket_open: bool | None = None
        self._member_names: Dict[str, Sequence[str]] = {}

    def ticket_open(self) -> bool:
        if self._ticket_open is None:
            self._ticket_open = db.run(lambda s: tickets.open_ticket_for(s, self.conversation_id) is not None)
        return self._ticket_open

    def copy_to_ticket(self, text: str) -> None:
        def copy(session) -> None:
            ticket = tickets.open_ticket_for(session, self.conversation_id)
            if (
                ticket is not None
                and _count(session, TicketMessage, TicketMessage.ticket_id == ticket.id) < MAX_MESSAGES_PER_TICKET
            ):
                tickets.add_message(session, ticket, tickets.RESIDENT, text)

        db.run(copy)

    def open_ticket(self, household_id: str | None) -> bool:
        """Opens the conversation's ticket (or keeps the open one); False when the conversation has opened its
        tickets for the day (ANJU_MAX_TICKETS_A_DAY): one client cannot fill the staff's list."""

        def open_(session) -> bool:
            if tickets.open_ticket_for(session, self.conversation_id) is None:
                since = utcnow() - timedelta(days=1)
                opened = _count(
                    session, Ticket, Ticket.conversation_id == self.conversation_id, Ticket.created_at >= since
                )
                if opened >= self.settings.max_tickets_per_conversation_day:
                    return False
            tickets.open_ticket(session, self.conversation_id, self.channel, self.transcript, household_id)
            return True

        self._ticket_open = db.run(open_) or self._ticket_open
        return bool(self._ticket_open)

    def close_ticket(self) -> None:
        def close(session) -> None:
            ticket = tickets.open_ticket_for(session, self.conversation_id)
            if ticket is not None:
                tickets.add_message(session, ticket, tickets.RESIDENT, "（居民说问题已解决）")
                tickets.close_ticket(session, ticket, "resident")

        db.run(close)
        self._ticket_open = False

    def log_unanswered(self, text: str, intent: str, topic: str) -> None:
        """Keeps the question for the staff's list, up to ANJU_MAX_UNANSWERED a conversation."""

        def log(session) -> None:
            if (
                _count(session, Unanswered, Unanswered.conversation_id == self.conversation_id)
                < self.settings.max_unanswered_per_conversation
            ):
                tickets.log_unanswered(session, self.channel, self.conversation_id, text, intent, topic)

        db.run(log)

    def conversation_locked(self) -> bool:
        key = repository.conversation_key(self.conversation_id)
        return db.run(lambda s: repository.lock_of(s, [key]) is not None)

    def verify(self, name: str, code: str) -> repository.VerificationResult:
        s = self.settings
        return db.run(
            repository.verify_head, self.conversation_id, name, code, s.verify_max_failures, s.verify_lock_minutes
        )

    def household(self, household_id: str, shown: Sequence[str]) -> Tuple[Any, rules.HouseholdFacts] | None:
        def load(session):
            household = repository.household_with_members(session, household_id)
            if household is None:
                return None
            repository.audit(session, self.channel, self.conversation_id, household_id, list(shown))
            return household, repository.facts_of(household)

        return db.run(load)

    def member_names(self, household_id: str) -> Sequence[str]:
        """The members' names, to recognise "王桂兰的奖补呢"; shows nothing, so it is not a lookup to audit."""
        if not household_id:
            return []
        if household_id not in self._member_names:  # asked more than once in a turn: one query
            self._member_names[household_id] = db.run(repository.member_names, household_id)
        return self._member_names[household_id]

    def remember_code(self, code: str | None) -> None:
        with _CODES_LOCK:
            now = time.monotonic()
            for key in [k for k, (_, at) in _CODES.items() if now - at > CODE_MEMORY_SECONDS]:
                del _CODES[key]
            if code:
                _CODES[self.conversation_id] = (code, now)
            else:
                _CODES.pop(self.conversation_id, None)

    def recall_code(self) -> str | None:
        with _CODES_LOCK:
            found = _CODES.get(self.conversation_id)
        if found and time.monotonic() - found[1] <= CODE_MEMORY_SECONDS:
            return found[0]
        return None
