"""Throttling: one client cannot fill the tables or push everyone else past their timeout.

- per conversation, a token bucket: a burst of 10 messages, then one a second (no resident types faster;
  ANJU_RATE_LIMIT_BURST, ANJU_RATE_LIMIT_PER_SECOND);
- per client address, ANJU_RATE_LIMIT_PER_IP messages a minute (0: off), the address taken from X-Forwarded-For
  only when the request comes from a proxy listed in ANJU_TRUSTED_PROXIES.

In memory, per gateway process; bounded: idle buckets are forgotten, and at most `max_keys` are kept. With REDIS_URL
the gateway processes share their buckets instead (bot/clients/shared_state.py, the same interface).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

SLOW_DOWN_TEXT = "您发得有点快，我跟不上了。请等几秒钟再发，我会一条一条回答您。"


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """A bucket per key: `burst` tokens, refilled at `per_second`; a message takes one."""

    def __init__(
        self, burst: float, per_second: float, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ):
        self.burst, self.rate, self.max_keys, self.clock = burst, per_second, max_keys, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the message may go; otherwise the seconds until it could."""
        now = self.clock()
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        wait = 0.0
        if bucket.tokens >= 1:
            bucket.tokens -= 1
        else:
            wait = (1 - bucket.tokens) / self.rate
        self._buckets[key] = bucket  # most recent last
        self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        full_after = self.burst / self.rate
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) > self.max_keys or now - oldest.at > full_after:
                del self._buckets[key]  # a bucket idle this long is full again: forgetting it changes nothing
            else:
                break

    def __len__(self) -> int:
        return len(self._buckets)


class Throttle:
    """The gateway's two limits, asked once per resident message."""

    def __init__(
        self,
        per_ip_per_minute: int,
        trusted_proxies: str = "",
        burst: int = 10,
        per_second: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.trusted = parse_networks(trusted_proxies)
        self.conversations = TokenBuckets(burst=burst, per_second=per_second, clock=clock)
        self.addresses = (
            TokenBuckets(burst=per_ip_per_minute, per_second=per_ip_per_minute / 60, clock=clock)
            if per_ip_per_minute > 0
            else None
        )

    async def wait(self, conversation: str, address: str | None) -> float:
        """Seconds the client should wait before this message is taken; 0 to take it now."""
        if self.addresses is not None and address:
            wait = self.addresses.take(address)
            if wait:
                return wait
        return self.conversations.take(conversation)

    async def wait_conversation(self, conversation: str) -> float:
        """The per-conversation limit alone (WeChat's messages come from WeChat's addresses, not the resident's)."""
        return self.conversations.take(conversation)


def parse_networks(text: str) -> Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """ANJU_TRUSTED_PROXIES: addresses or networks, separated by commas or spaces."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.replace(",", " ").split() if part.strip()]


def _in(address: str, networks: Iterable) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy; then the right-most address in
    X-Forwarded-For that is not itself a trusted proxy (what a client writes there itself is further left)."""
    if not peer or not trusted or not _in(peer, trusted) or not forwarded_for:
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not _in(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: count the proxy, not a made-up address
    return peer
