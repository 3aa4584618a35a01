"""Which Rasa server takes a conversation, when several serve it (README: Scaling).

Rendezvous (highest random weight) hashing over the servers' URLs: each conversation id ranks the servers in an order
of its own, and goes to the first of them that is up. A server that leaves moves only its own conversations (each to
the next in its order), and they come back when it returns; the others never move. A conversation must stay on one
server while it is up: Rasa's lock on a conversation is per process (or, in Redis, not race-safe across processes,
RasaHQ/rasa#9213), so two servers must never work on the same conversation at once.

A server that refused a connection is passed over for DOWN_SECONDS, then tried again. Thread-safe enough for the
action server's worker threads: a mark is one dict item, read and written whole.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Callable, Dict, List, Sequence

DOWN_SECONDS = 5.0


def weight(url: str, key: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{url}\n{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def rendezvous_order(urls: Sequence[str], key: str) -> List[str]:
    """Every server, the one `key` belongs to first."""
    return sorted(urls, key=lambda url: weight(url, key), reverse=True)


class Replicas:
    def __init__(
        self, urls: Sequence[str], down_seconds: float = DOWN_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        if not urls:
            raise ValueError("no Rasa server to send to")
        self.urls = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self._down_seconds = down_seconds
        self._clock = clock
        self._down_until: Dict[str, float] = {}
        self._turns = itertools.count()

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > self._clock()

    def mark_down(self, url: str) -> None:
        self._down_until[url] = self._clock() + self._down_seconds

    def mark_up(self, url: str) -> None:
        self._down_until.pop(url, None)

    def _up_first(self, ordered: List[str]) -> List[str]:
        """Those not marked down, in order, then those marked down (a mark is a hint: they may be back already)."""
        down = [url for url in ordered if self.is_down(url)]
        return [url for url in ordered if url not in down] + down

    def for_conversation(self, conversation_id: str) -> List[str]:
        """Where to send a conversation's message: its own server first, then the next in its order."""
        return self._up_first(rendezvous_order(self.urls, conversation_id))

    def any(self) -> List[str]:
        """For work that may go anywhere (a bare parse): the servers in turn, each call starting at the next."""
        start = next(self._turns) % len(self.urls)
        return self._up_first(self.urls[start:] + self.urls[:start])
