"""Handoff tickets and unanswered questions: shared by the action server (which opens them) and the staff console.
Functions take the session first; the caller owns the transaction. Every stored text is masked first.

Similar unanswered questions are grouped when they are written, so that the staff's list is one query a page however
many there are: a question joins the open group whose first question shares the most words with it (Jaccard ≥ 0.4)."""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, Generic, List, Sequence, Set, TypeVar

from sqlalchemy import desc, distinct, func, select, update
from sqlalchemy.orm import Session, selectinload

from bot.faq import tokens
from bot.models import Ticket, TicketMessage, Unanswered, utcnow
from bot.privacy import mask_text
from bot.text_normalization import TextNormalizer

RESIDENT = "resident"
SIMILAR = 0.4  # share of words (Jaccard) from which two questions are one
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a long list."""

    items: List[T]
    number: int  # from 1
    pages: int  # at least 1
    total: int  # items on all pages


def _page_number(total: int, number: int, per_page: int) -> tuple[int, int]:
    pages = max(1, -(-total // per_page))
    return min(max(1, number), pages), pages


# ---------------------------------------------------------------- unanswered questions


@functools.lru_cache(maxsize=1)
def _normalizer() -> TextNormalizer:
    return TextNormalizer()


def question_words(text: str) -> Set[str]:
    """What questions are compared by: the staff FAQ search's words (jieba words and character bigrams)."""
    return set(tokens(text, _normalizer())) or {"".join(text.split())}


class _OpenGroups:
    """The open groups' first questions, indexed by word: a new question is compared only with groups it shares a
    word with, not with every group."""

    def __init__(self, session: Session):
        self.words: Dict[int, Set[str]] = {}
        self.by_word: Dict[str, List[int]] = defaultdict(list)
        firsts = select(Unanswered.id, Unanswered.words).where(
            Unanswered.handled.is_(False), Unanswered.group_id == Unanswered.id
        )
        for group_id, words in session.execute(firsts):
            self.add(group_id, set(words.split()))

    def add(self, group_id: int, words: Set[str]) -> None:
        self.words[group_id] = words
        for word in words:
            self.by_word[word].append(group_id)

    def find(self, words: Set[str]) -> int | None:
        """The most similar open group (the oldest of equals), or None."""
        shared = Counter(group_id for word in words for group_id in self.by_word.get(word, ()))
        best, best_score = None, SIMILAR
        for group_id, n in sorted(shared.items()):
            score = n / (len(words) + len(self.words[group_id]) - n)
            if score > best_score or (score == best_score and best is None):
                best, best_score = group_id, score
        return best

    def place(self, item: Unanswered, words: Set[str]) -> None:
        """Puts `item` (flushed: it has its id) into its group, or makes it the first of a new one."""
        item.words = " ".join(sorted(words))
        item.group_id = self.find(words) or item.id
        if item.group_id == item.id:
            self.add(item.id, words)


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
    session.flush()
    _OpenGroups(session).place(item, question_words(item.text))
    return item


def group_ungrouped(session: Session) -> int:
    """Groups the open questions that have no group yet (those written before groups were kept); returns how many."""
    waiting = list(
        session.scalars(
            select(Unanswered)
            .where(Unanswered.handled.is_(False), Unanswered.group_id.is_(None))
            .order_by(Unanswered.id)
        )
    )
    if waiting:
        groups = _OpenGroups(session)
        for item in waiting:
            groups.place(item, set(item.words.split()) or question_words(item.text))
        session.flush()
    return len(waiting)


@dataclass(frozen=True)
class QuestionGroup:
    group_id: int
    count: int
    text: str  # the group's first open question
    others: List[str]  # other wordings, at most 20
    topic: str  # the most common topic guess
    last_id: int  # the newest question in the group when the page was read: "handled" goes up to here


def unanswered_groups(session: Session, number: int = 1, per_page: int = 50) -> Page[QuestionGroup]:
    """The open questions' groups, biggest first (then the most recently asked), one page of them."""
    group_ungrouped(session)
    is_open = Unanswered.handled.is_(False)
    total = session.scalar(select(func.count(distinct(Unanswered.group_id))).where(is_open)) or 0
    number, pages = _page_number(total, number, per_page)
    count, last = func.count(Unanswered.id).label("count"), func.max(Unanswered.id).label("last")
    heads = session.execute(
        select(Unanswered.group_id, count, last)
        .where(is_open)
        .group_by(Unanswered.group_id)
        .order_by(desc(count), desc(last))
        .limit(per_page)
        .offset((number - 1) * per_page)
    ).all()
    members: Dict[int, List[tuple[str, str]]] = defaultdict(list)
    for group_id, text, topic in session.execute(
        select(Unanswered.group_id, Unanswered.text, Unanswered.topic)
        .where(is_open, Unanswered.group_id.in_([h.group_id for h in heads]))
        .order_by(Unanswered.id)
    ):
        members[group_id].append((text, topic))
    groups = []
    for head in heads:
        texts = [text for text, _ in members[head.group_id]]
        topic = Counter(topic for _, topic in members[head.group_id]).most_common(1)[0][0]
        others = sorted(set(texts[1:]) - {texts[0]})[:20]
        groups.append(QuestionGroup(head.group_id, head.count, texts[0], others, topic, head.last))
    return Page(groups, number, pages, total)


def open_unanswered_texts(session: Session) -> List[tuple[str, str]]:
    """(text, topic) of every open question, oldest first."""
    query = select(Unanswered.text, Unanswered.topic).where(Unanswered.handled.is_(False)).order_by(Unanswered.id)
    return [(text, topic) for text, topic in session.execute(query)]


def unanswered_since(session: Session, since: dt.datetime) -> List:
    """(at, topic) rows of the questions since `since`, for the weekly chart."""
    return list(session.execute(select(Unanswered.at, Unanswered.topic).where(Unanswered.at >= since)))


def mark_group_handled(session: Session, group_id: int, up_to_id: int) -> int:
    """Marks a group's questions handled, up to the newest the staff member saw; returns how many."""
    result = session.execute(
        update(Unanswered)
        .where(Unanswered.group_id == group_id, Unanswered.id <= up_to_id, Unanswered.handled.is_(False))
        .values(handled=True)
    )
    return result.rowcount


# ---------------------------------------------------------------- handoff tickets


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


def tickets_page(session: Session, status: str = "open", number: int = 1, per_page: int = 20) -> Page[Ticket]:
    """One page of the tickets with `status`, newest first, with their messages."""
    total = session.scalar(select(func.count(Ticket.id)).where(Ticket.status == status)) or 0
    number, pages = _page_number(total, number, per_page)
    query = (
        select(Ticket)
        .where(Ticket.status == status)
        .options(selectinload(Ticket.messages))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(per_page)
        .offset((number - 1) * per_page)
    )
    return Page(list(session.scalars(query)), number, pages, total)


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
