"""The conversation's services on the database: tickets, unanswered questions, verification and audited household
lookups for one conversation (bot.dialogue.Services). Each call is its own short transaction."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Sequence, Tuple

from bot import db, repository, rules, tickets
from bot.settings import Settings

# a code typed before the name, kept in this process's memory for a few minutes only: never in the tracker or database
_CODES: Dict[str, Tuple[str, float]] = {}
_CODES_LOCK = threading.Lock()
CODE_MEMORY_SECONDS = 300


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
        db.run(tickets.route_to_open_ticket, self.conversation_id, text)

    def open_ticket(self, household_id: str | None) -> None:
        db.run(lambda s: tickets.open_ticket(s, self.conversation_id, self.channel, self.transcript, household_id))
        self._ticket_open = True

    def close_ticket(self) -> None:
        def close(session) -> None:
            ticket = tickets.open_ticket_for(session, self.conversation_id)
            if ticket is not None:
                tickets.add_message(session, ticket, tickets.RESIDENT, "（居民说问题已解决）")
                tickets.close_ticket(session, ticket, "resident")

        db.run(close)
        self._ticket_open = False

    def log_unanswered(self, text: str, intent: str, topic: str) -> None:
        db.run(tickets.log_unanswered, self.channel, self.conversation_id, text, intent, topic)

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
