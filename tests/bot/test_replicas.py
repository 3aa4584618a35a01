"""Which Rasa server takes a conversation (bot/replicas.py): rendezvous hashing, down marks, parse in turn."""

from collections import Counter

from bot.replicas import Replicas, rendezvous_order

URLS = [f"http://127.0.0.1:{5005 + i}" for i in range(3)]
CONVERSATIONS = [f"api:resident-{i}" for i in range(3000)]


def owner(urls, conversation):
    return rendezvous_order(urls, conversation)[0]


def test_conversations_spread_over_the_servers():
    counts = Counter(owner(URLS, c) for c in CONVERSATIONS)
    assert set(counts) == set(URLS)
    assert min(counts.values()) > 0.8 * len(CONVERSATIONS) / len(URLS)


def test_a_server_that_leaves_moves_only_its_own_conversations_and_they_come_back():
    before = {c: owner(URLS, c) for c in CONVERSATIONS}
    gone = URLS[1]
    after = {c: owner([u for u in URLS if u != gone], c) for c in CONVERSATIONS}
    moved = {c for c in CONVERSATIONS if before[c] != after[c]}
    assert moved == {c for c in CONVERSATIONS if before[c] == gone}
    # each moves to the second server of its own order, so the survivors share the load
    assert {after[c] for c in moved} == {URLS[0], URLS[2]}
    assert {c: owner(URLS, c) for c in CONVERSATIONS} == before  # back again: every conversation home


def test_the_order_does_not_depend_on_how_the_servers_are_listed():
    assert all(owner(URLS, c) == owner(list(reversed(URLS)), c) for c in CONVERSATIONS[:200])


def test_a_server_marked_down_is_tried_last_until_the_mark_runs_out():
    now = [100.0]
    replicas = Replicas(URLS, down_seconds=5, clock=lambda: now[0])
    conversation = CONVERSATIONS[0]
    order = replicas.for_conversation(conversation)
    replicas.mark_down(order[0])
    assert replicas.for_conversation(conversation) == order[1:] + order[:1]
    now[0] += 4.9
    assert replicas.for_conversation(conversation)[0] == order[1]
    now[0] += 0.2
    assert replicas.for_conversation(conversation) == order
    replicas.mark_down(order[0])
    replicas.mark_up(order[0])
    assert replicas.for_conversation(conversation) == order


def test_any_takes_the_servers_in_turn_and_passes_over_one_that_is_down():
    replicas = Replicas(URLS)
    firsts = [replicas.any()[0] for _ in range(6)]
    assert firsts == URLS + URLS
    replicas.mark_down(URLS[1])
    firsts = [replicas.any() for _ in range(3)]
    assert all(order[0] != URLS[1] and order[-1] == URLS[1] for order in firsts)
    assert sorted(firsts[0]) == sorted(URLS)


def test_urls_are_kept_once_without_a_trailing_slash():
    assert Replicas(["http://a:1/", "http://a:1", "http://b:2"]).urls == ["http://a:1", "http://b:2"]
