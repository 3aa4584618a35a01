"""The gateway's state shared through Redis (REDIS_URL), so that several gateway processes behave as one: WeChat's
turns (one Rasa turn per MsgId, whichever gateway WeChat's retry reaches; the answer sent once), the nonces of signed
WeChat requests (one use across all gateways), and the rate limits (one token bucket per conversation and per client
address). Without REDIS_URL each process keeps its own (bot/clients/wechat.py, bot/throttle.py).

When Redis is down (refused, or silent for REDIS_TIMEOUT_SECONDS) the gateway keeps answering: each call falls back
to this process's own memory (its own buckets, turns and nonces), with a warning when Redis goes and a line when it is
back. For RETRY_AFTER_SECONDS after a failure Redis is not tried, so a hung Redis costs one message a timeout, not
every message. /healthz shows "redis": "down".
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Awaitable, Callable, Tuple, TypeVar

import redis.asyncio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot import sealing
from bot.clients import wechat
from bot.throttle import Throttle

logger = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_TIMEOUT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 5.0
ANSWER_SECONDS = 60  # an answer waits this long for WeChat's retries (they come within about 15 s), then is gone
POLL_SECONDS = 0.05  # how often a gateway holding a retry looks for the answer another gateway is getting
# the gateway asking Rasa for a turn says it is alive this often (a key that lasts ALIVE_SECONDS); a retry that finds
# neither the answer nor that key knows the gateway died, and the first to claim the takeover asks Rasa again
ALIVE_SECONDS = 3.0
ANSWER_KEY_PURPOSE = "wechat answers shared through redis"


class AnswerBox:
    """An answer kept in Redis is sealed (AES-GCM, the key derived from the secret every gateway shares, the turn's
    Redis key as associated data): it may show a verified household, and Redis, its snapshots and anyone who can read
    them see only ciphertext. An answer moved to another turn's key, altered or sealed with another secret opens to
    None."""

    def __init__(self, key: bytes | None = None):
        self.aead = AESGCM(key or sealing.derived_key(ANSWER_KEY_PURPOSE))

    def seal(self, turn_key: str, answer: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, answer.encode("utf-8"), turn_key.encode("utf-8"))

    def open(self, turn_key: str, sealed: bytes) -> str | None:
        try:
            return self.aead.decrypt(sealed[:12], sealed[12:], turn_key.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError, UnicodeDecodeError):
            logger.warning("a shared WeChat answer did not open (another secret, or altered): not delivered")
            return None


class RedisDown(Exception):
    """Redis did not answer (or failed moments ago): use this process's own memory."""


class SharedState:
    """The Redis connection of the gateway's shared state, with a breaker: after a failure Redis is left alone for
    `retry_after` seconds, and callers fall back at once."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float = REDIS_TIMEOUT_SECONDS,
        retry_after: float = RETRY_AFTER_SECONDS,
        prefix: str = "anju:",
    ):
        self.client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # a connection Redis closed (a restart, a managed service's failover) is made again once, at once;
            # a timeout is not retried: a hung Redis costs one timeout, then the breaker
            retry_on_error=[RedisConnectionError],
            client_name="anju-gateway",  # CLIENT LIST tells the gateways' connections from Rasa's lock store's
        )
        self.prefix = prefix
        self.retry_after = retry_after
        self._retry_at = 0.0
        self._down = False

    async def call(self, command: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """command(client)'s result; RedisDown when Redis fails, or failed less than `retry_after` seconds ago."""
        if time.monotonic() < self._retry_at:
            raise RedisDown("Redis failed moments ago")
        try:
            result = await command(self.client)
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            self._failed(e)
            raise RedisDown(type(e).__name__) from e
        self._up()
        return result

    async def ping(self) -> bool:
        """Whether Redis answers now (/healthz); tried whatever the breaker says."""
        try:
            await self.client.ping()
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            self._failed(e)
            return False
        self._up()
        return True

    async def close(self) -> None:
        await self.client.close()

    def _failed(self, error: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_after
        if not self._down:
            self._down = True
            why = (str(error).splitlines() or [""])[0] or type(error).__name__  # redis-py names host and port only
            logger.warning(
                "Redis is down (%s): rate limits, WeChat deduplication and nonces are kept by each gateway process "
                "alone until it is back",
                why,
            )

    def _up(self) -> None:
        self._retry_at = 0.0
        if self._down:
            self._down = False
            logger.info("Redis is back: gateway state is shared again")


async def _first(client: redis.asyncio.Redis, key: str, value: str, ttl: int) -> str | None:
    """SET key value NX EX ttl: None when this call set it, else the value that was there first."""
    if await client.set(key, value, nx=True, ex=ttl):
        return None
    first = await client.get(key)
    return "" if first is None else first.decode("utf-8")


# ---------------------------------------------------------------- rate limits

# One token bucket, atomically: KEYS[1] the bucket; ARGV[1] burst, ARGV[2] tokens a second. Redis's own clock, so
# gateways on several machines agree. Returns the seconds to wait ("0": take the message), as a string (Lua numbers
# would come back as integers).
TOKEN_BUCKET = """
redis.replicate_commands()
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class SharedThrottle(Throttle):
    """bot.throttle.Throttle with its buckets in Redis: a conversation or an address is limited once, however many
    gateways its messages reach. While Redis is down, this process's own buckets count (a resident is never refused
    for that; a flood still meets a limit per process)."""

    def __init__(self, shared: SharedState, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared = shared
        self._bucket = shared.client.register_script(TOKEN_BUCKET)

    async def _take(self, kind: str, key: str, buckets) -> float:
        try:
            wait = await self.shared.call(
                lambda _client: self._bucket(
                    keys=[f"{self.shared.prefix}rate:{kind}:{key}"], args=[buckets.burst, buckets.rate]
                )
            )
        except RedisDown:
            return buckets.take(key)
        return float(wait)

    async def wait(self, conversation: str, address: str | None) -> float:
        if self.addresses is not None and address:
            wait = await self._take("address", address, self.addresses)
            if wait:
                return wait
        return await self._take("conversation", conversation, self.conversations)

    async def wait_conversation(self, conversation: str) -> float:
        return await self._take("conversation", conversation, self.conversations)


# ---------------------------------------------------------------- WeChat


class SharedReplayGuard(wechat.ReplayGuard):
    """The (timestamp, nonce) memory in Redis: SET NX, kept while the timestamp would be accepted (up to 5 minutes
    after it, as it may be up to 5 minutes ahead). This process remembers too, for when Redis is down."""

    def __init__(self, shared: SharedState, **kwargs):
        super().__init__(**kwargs)
        self.shared = shared

    async def claim(self, timestamp: str, nonce: str, message: str) -> str | None:
        key = f"{self.shared.prefix}wechat:nonce:{timestamp}:{nonce}"
        ttl = max(1, int(timestamp) + self.window - int(self.clock()) + 1)
        try:
            first = await self.shared.call(lambda client: _first(client, key, message, ttl))
        except RedisDown:
            return self.remember(timestamp, nonce, message)
        if first is None:
            self.remember(timestamp, nonce, message)
        return first


async def _claim_delivery(client: redis.asyncio.Redis, key: str, how: str, ttl: int) -> bool:
    first = await _first(client, key, how, ttl)
    return first is None or first == how == "passive"


class SharedTurn(wechat.Turn):
    """A turn this process is asking Rasa for; how it is delivered is decided in Redis, with the other gateways."""

    def __init__(self, task: asyncio.Task, shared: SharedState, key: str, ttl: int):
        super().__init__(task)
        self.shared, self.key, self.ttl = shared, key, ttl

    async def claim_delivery(self, how: str) -> bool:
        try:
            won = await self.shared.call(lambda client: _claim_delivery(client, self.key + ":delivered", how, self.ttl))
        except RedisDown:
            return await super().claim_delivery(how)
        if won:
            self.delivered = how
        return won


class RemoteTurn:
    """A turn another gateway process is asking Rasa for: its answer is read from Redis when it is there."""

    def __init__(
        self,
        shared: SharedState,
        key: str,
        started_at: float,
        ttl: int,
        box: AnswerBox,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.shared, self.key, self.started_at, self.ttl, self.poll = shared, key, started_at, ttl, poll_seconds
        self.box = box

    def age(self) -> float:
        return time.time() - self.started_at  # wall clocks: both machines keep time by NTP (WeChat needs it too)

    async def answer(self, timeout: float) -> str | None:
        until = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                answer = await self.shared.call(lambda client: client.get(self.key + ":answer"))
            except RedisDown:
                return None
            if answer is not None:
                return self.box.open(self.key + ":answer", answer)
            left = until - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(self.poll, left))

    async def orphaned(self, alive_seconds: float) -> bool:
        """The gateway that claimed this turn died before answering: no answer, and no sign of life for longer than
        it says it is alive (it may never have said so, if it died at once)."""
        if self.age() < alive_seconds:
            return False
        try:
            answer, alive = await self.shared.call(
                lambda client: client.mget(self.key + ":answer", self.key + ":alive")
            )
        except RedisDown:
            return False
        return answer is None and alive is None

    async def claim_delivery(self, how: str) -> bool:
        try:
            return await self.shared.call(
                lambda client: _claim_delivery(client, self.key + ":delivered", how, self.ttl)
            )
        except RedisDown:
            return False  # the gateway asking Rasa delivers it: better "success" here than the answer twice


class SharedTurns(wechat.TurnCache):
    """Turns claimed in Redis (SET NX on the turn's key, valued with when it started): the first gateway to claim a
    MsgId asks Rasa and stores the answer for ANSWER_SECONDS; a gateway that gets one of WeChat's retries waits for
    that answer until the reply deadline. The turns this process started are also kept here, as without Redis, and
    while Redis is down every turn is this process's own."""

    def __init__(
        self,
        shared: SharedState,
        ttl_seconds: int = 300,
        poll_seconds: float = POLL_SECONDS,
        alive_seconds: float = ALIVE_SECONDS,
    ):
        super().__init__(ttl_seconds)
        self.shared, self.poll, self.alive = shared, poll_seconds, alive_seconds
        self.box = AnswerBox()

    def _shared_key(self, key: str) -> str:
        return f"{self.shared.prefix}wechat:turn:{key}"

    async def find(self, key: str) -> wechat.Turn | RemoteTurn | None:
        turn = self.get(key)
        if turn is not None:
            return turn
        shared_key = self._shared_key(key)
        try:
            started_at = await self.shared.call(lambda client: client.get(shared_key))
        except RedisDown:
            return None
        return (
            None
            if started_at is None
            else RemoteTurn(self.shared, shared_key, float(started_at), self.ttl, self.box, self.poll)
        )

    async def start(self, key: str, ask: Callable[[], Awaitable[str]]) -> Tuple[wechat.Turn | RemoteTurn, bool]:
        shared_key = self._shared_key(key)
        now = time.time()
        try:
            first = await self.shared.call(lambda client: _first(client, shared_key, repr(now), int(self.ttl)))
        except RedisDown:
            return await super().start(key, ask)
        mine = self.get(key)  # a request in this process may have started it meanwhile
        if mine is not None:
            return mine, False
        if first:
            return RemoteTurn(self.shared, shared_key, float(first), int(self.ttl), self.box, self.poll), False
        return self._ask_here(key, shared_key, ask), True

    async def resume(
        self, key: str, turn: wechat.Turn | RemoteTurn, ask: Callable[[], Awaitable[str]]
    ) -> Tuple[wechat.Turn | RemoteTurn, bool]:
        """A retry's turn; when the gateway that claimed it died before answering (RemoteTurn.orphaned), the first
        gateway to claim the takeover asks Rasa again and answers (Rasa may then keep the message twice: better than
        a resident left without a reply); the others go on waiting for its answer."""
        if not isinstance(turn, RemoteTurn) or not await turn.orphaned(self.alive):
            return turn, False
        shared_key = self._shared_key(key)
        try:
            first = await self.shared.call(
                lambda client: _first(client, shared_key + ":takeover", repr(time.time()), int(self.ttl))
            )
        except RedisDown:
            return turn, False
        if first is not None:
            return turn, False
        logger.warning("the gateway asking Rasa for a WeChat turn went silent: this one asks again")
        return self._ask_here(key, shared_key, ask), True

    def _ask_here(self, key: str, shared_key: str, ask: Callable[[], Awaitable[str]]) -> SharedTurn:
        """This process asks Rasa for the turn, says so while it waits, and shares the answer."""
        return self.add(
            key,
            SharedTurn(
                asyncio.ensure_future(self._ask_and_share(shared_key, ask)), self.shared, shared_key, int(self.ttl)
            ),
        )

    async def _alive(self, shared_key: str) -> None:
        """Says this gateway is alive and asking, until cancelled."""
        while True:
            try:
                await self.shared.call(lambda client: client.set(shared_key + ":alive", "1", px=int(self.alive * 1000)))
            except RedisDown:
                pass
            await asyncio.sleep(self.alive / 3)

    async def _ask_and_share(self, shared_key: str, ask: Callable[[], Awaitable[str]]) -> str:
        alive = asyncio.ensure_future(self._alive(shared_key))
        try:
            answer = await ask()
        finally:
            alive.cancel()
        try:
            sealed = self.box.seal(shared_key + ":answer", answer)
            await self.shared.call(lambda client: client.set(shared_key + ":answer", sealed, ex=ANSWER_SECONDS))
        except RedisDown:
            pass  # the other gateways' retries get "success"; this one still delivers it
        return answer


def connect(url: str) -> SharedState | None:
    """The shared state of REDIS_URL; None without one (each process keeps its own)."""
    return SharedState(url) if url else None
