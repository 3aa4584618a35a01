"""Nothing is lost on restart: a resident verifies, asks for a person and is partway through a conversation; another
conversation gets locked out; both servers stop and start again on the same databases (as `make run` stopped and
started), and each conversation carries on where it was: still verified, on the same topic, the ticket open, the lock
in force. The conversation is in the tracker store's database, masked, across both runs.

Its own stack on its own SQLite databases, started twice (each Rasa server takes ~30 s): the session's stacks are
left alone. PostgreSQL keeps conversations the same way (tests/policies/test_tracker_store.py)."""

import json
import os

import pytest

from bot import conversations, db
from bot.models import Ticket, VerificationLock, utcnow
from bot.repository import conversation_key, household_key
from bot.tickets import open_ticket_for

from .conftest import Stack, _load_demo_ledger
from .test_household import Resident, suffix

pytestmark = pytest.mark.e2e


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'db' / 'anju.sqlite3'}"
    _load_demo_ledger([url])
    yield url
    db.dispose(url)


def start(tmp_path, name, database_url, model):
    stack = Stack(tmp_path / name, database_url, model)
    try:
        return stack.wait()
    except BaseException:
        stack.stop()
        raise


def test_a_conversation_carries_on_after_a_restart(tmp_path, database_url):
    model = os.environ.get("ANJU_MODEL")
    if not model:
        pytest.fail("ANJU_MODEL must name a trained model: run these tests through `make test`")
    for name in ("first", "second"):
        (tmp_path / name).mkdir()

    stack = start(tmp_path, "first", database_url, model)
    try:
        resident, stranger, worker = Resident(stack), Resident(stack), Resident(stack)
        assert "800元" in worker.ask("省外打工有交通补贴吗")
        assert "户主的姓名" in resident.ask("我家能领什么补贴")
        resident.ask("张三")
        assert "核对通过" in resident.ask(suffix("GHY00001"))
        assert "转给工作人员" in resident.ask("转人工")
        stranger.ask("查下我家的情况")
        for _ in range(5):
            stranger.ask("李四")
            locked = stranger.ask("000000")
        assert "锁定" in locked
        before = stack.stored_events(resident.sender)
    finally:
        stack.stop()
    assert all(process.poll() is not None for process in stack.processes.values())

    # the stores hold it while nothing runs
    assert stack.tracker_url == f"sqlite:///{tmp_path / 'db' / 'conversations.sqlite3'}"
    assert conversations.summary(stack.tracker_url).conversations == 3
    with db.session_scope(database_url) as session:
        ticket = open_ticket_for(session, resident.sender)
        assert ticket.household_id == "GHY00001"
        for key in (household_key("GHY00002"), conversation_key(stranger.sender)):
            lock = session.get(VerificationLock, key)
            assert lock is not None and lock.locked_until > utcnow()

    again = start(tmp_path, "second", database_url, model)
    try:
        resident.stack = stranger.stack = worker.stack = again  # same senders, new processes on new ports
        # the topic holds: a bare follow-up is read as the transport subsidy, for the region it names
        text = worker.ask("那在省内呢")
        assert "县外、省内" in text and "务工交通补贴300元" in text
        # still verified: the household answer comes with no new check, and the open ticket still hears the resident
        text = resident.ask("查一下我家孩子上哪个学校")
        assert "桃园昇小学" in text and "户主的姓名" not in text
        assert "已转给工作人员" in text
        # still locked: the right answer is refused
        stranger.ask("查下我家的情况")
        text = stranger.ask(f"李四 {suffix('GHY00002')}")
        assert "锁定" in text and "李四家" not in text
        after = again.stored_events(resident.sender)
    finally:
        again.stop()

    with db.session_scope(database_url) as session:  # the same ticket, and it heard the resident after the restart
        assert open_ticket_for(session, resident.sender).id == ticket.id
        assert "查一下我家孩子上哪个学校" in [m.text for m in session.get(Ticket, ticket.id).messages]

    # one conversation across both runs, masked as before
    assert after[: len(before)] == before
    said = [e["text"] for e in after if e["event"] == "user"]
    assert said[0] == "我家能领什么补贴" and said[-1] == "查一下我家孩子上哪个学校"
    stored = json.dumps(after, ensure_ascii=False)
    assert suffix("GHY00001") not in stored
