"""Load for the speed figures: concurrent clients against the gateway, Rasa's REST channel and the bare parse, each
client opening a new conversation every 3 messages; and one long conversation, message by message.

The three targets get the same messages: client i draws from its own seeded generator, whatever the target.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence, Tuple

import aiohttp

from bot.faq import nlu_examples
from tools.soak import FOLLOW_UPS, HOUSEHOLD, questions
from tools.stack import ROOT

TARGETS = ("gateway", "rest", "parse", "parse_all")
TARGET_LABELS = {
    "gateway": "gateway /api/chat (full path)",
    "rest": "Rasa REST channel (no gateway)",
    "parse": "bare parse (NLU only) on one Rasa server: the model as one process serves it",
    "parse_all": "bare parse spread over every Rasa server (the same as parse with one server)",
}
PARSES = ("parse", "parse_all")
# what a long conversation leaves out: the household check (a loop of its own), hand-off and 退出
LONG_CONVERSATION_SKIPS = {"ask_household", "request_human", "forget_verification", "inform"}


@dataclass
class Endpoints:
    """Where the load goes: the gateway and every Rasa server behind it, with the gateway channel's token."""

    gateway: str
    rasa: List[str]
    token: str

    def request(self, target: str, client: int, conversation: str, message: str) -> Tuple[str, Dict[str, Any], dict]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if target == "gateway":
            return f"{self.gateway}/api/chat", {"sender": conversation, "message": message}, {}
        if target == "rest":
            # a conversation stays on one Rasa server, as the gateway keeps it; the id is the one the gateway sends
            base = self.rasa[zlib.crc32(conversation.encode()) % len(self.rasa)]
            payload = {"sender": f"api:{conversation}", "message": message, "input_channel": "api", "metadata": {}}
            return f"{base}/webhooks/gateway/webhook", payload, headers
        base = self.rasa[client % len(self.rasa)] if target == "parse_all" else self.rasa[0]
        return f"{base}/webhooks/gateway/parse", {"text": message}, headers


# the apologies that stand in for an answer (the gateway's when Rasa is down, slow or silent; the action's when it
# timed out or failed, actions/respond.py): a reply, but not an answer
APOLOGY = re.compile(r"^抱歉，.*着急的话请联系")


def outcome_of(target: str, status: int, body: Any) -> str:
    """ "ok" for an answer; otherwise what came back instead."""
    if status != 200:
        return f"HTTP {status}"
    if target in PARSES:
        return "ok" if isinstance(body, dict) and isinstance(body.get("intent"), dict) else "HTTP 200 without an intent"
    texts = [r["text"] for r in body if isinstance(r, dict) and r.get("text")] if isinstance(body, list) else []
    if not texts:
        return "HTTP 200 without text"
    apology = next((t for t in texts if APOLOGY.match(t)), None)
    return f"apology: {apology[:14]}…" if apology else "ok"


class Messages:
    """What client i says, conversation after conversation (the mix of tools/soak.py: held-out questions, follow-ups,
    now and then the household check with the demo ledger)."""

    def __init__(self, client: int, seed: int = 7):
        self.random = random.Random(seed * 1000 + client)
        self.questions = questions()

    def conversation(self) -> List[str]:
        if self.random.random() < 0.15:
            return list(HOUSEHOLD)
        return [self.random.choice(self.questions), self.random.choice(FOLLOW_UPS), self.random.choice(self.questions)]


@dataclass
class Cell:
    """One target at one concurrency: what was answered inside the measuring windows (after each ramp)."""

    target: str
    clients: int
    latencies_ms: List[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    window_s: float = 0.0

    def summary(self) -> Dict[str, Any]:
        ms = sorted(self.latencies_ms) or [0.0]
        ok = self.outcomes["ok"]
        return {
            "target": self.target,
            "clients": self.clients,
            "messages": len(self.latencies_ms),
            "answered": ok,
            "errors": {k: v for k, v in self.outcomes.items() if k != "ok"},
            "window_s": round(self.window_s, 2),
            "messages_per_s": round(ok / self.window_s, 2) if self.window_s else 0.0,
            "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(ms[-1], 1),
        }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def post(session: aiohttp.ClientSession, target: str, url: str, payload: dict, headers: dict):
    """(outcome, latency in ms, body) of one message."""
    started = time.perf_counter()
    body: Any = None
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            body = await response.json(content_type=None)
            outcome = outcome_of(target, response.status, body)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        outcome = e.__class__.__name__
    return outcome, (time.perf_counter() - started) * 1000, body


async def run_cell(
    endpoints: Endpoints,
    cell: Cell,
    ramp: float,
    window: float,
    on_message: Callable[[str], None] | None = None,
) -> Cell:
    """`cell.clients` clients send for ramp + window seconds; only messages answered inside the window count (so
    neither the start, when every client sends at once, nor the last messages still in flight bias the rate).
    Messages in flight at the end are awaited, so the next cell starts on an idle stack."""
    run = uuid.uuid4().hex[:6]
    timeout = aiohttp.ClientTimeout(total=60)
    started = time.monotonic()
    opens, closes = started + ramp, started + ramp + window

    async def client(session: aiohttp.ClientSession, i: int) -> None:
        messages = Messages(i)
        n = 0
        while time.monotonic() < closes:
            n += 1
            conversation = f"bench-{run}-{i}-{n}"
            for message in messages.conversation():
                if time.monotonic() >= closes:
                    return
                url, payload, headers = endpoints.request(cell.target, i, conversation, message)
                outcome, ms, _ = await post(session, cell.target, url, payload, headers)
                if opens <= time.monotonic() <= closes:
                    cell.latencies_ms.append(ms)
                    cell.outcomes[outcome] += 1
                if on_message:
                    on_message(cell.target)

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session, i) for i in range(cell.clients)))
    cell.window_s += window
    return cell


async def warm_up(endpoints: Endpoints, messages: int = 10, on_message: Callable[[str], None] | None = None) -> None:
    """Not measured: every message the load can send, parsed once on every Rasa server (the model's first look at an
    input can cost far more than the next: loading, tracing), then a few conversations on each path."""
    distinct = sorted({*questions(), *FOLLOW_UPS, *HOUSEHOLD})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for server in range(len(endpoints.rasa)):
            for start in range(0, len(distinct), 8):
                batch = distinct[start : start + 8]
                calls = [endpoints.request("parse_all", server, "warm", text) for text in batch]
                await asyncio.gather(*(post(session, "parse_all", *call) for call in calls))
        for target in TARGETS:
            source = Messages(999)
            sent = 0
            while sent < messages:
                conversation = f"warm-{uuid.uuid4().hex[:8]}"
                for message in source.conversation():
                    url, payload, headers = endpoints.request(target, 0, conversation, message)
                    await post(session, target, url, payload, headers)
                    sent += 1
                    if on_message:
                        on_message(target)


async def speed(
    endpoints: Endpoints,
    levels: Sequence[int],
    window: float,
    rounds: int = 1,
    ramp: float = 2.0,
    on_message: Callable[[str], None] | None = None,
    log: Callable[[str], None] = print,
) -> List[Dict[str, Any]]:
    """Every target at every level, `rounds` times (ramp, then a window each), the targets taking turns so that a
    change of load on the machine falls on all three alike; their order turns at each round."""
    cells = []
    for clients in levels:
        level = {target: Cell(target, clients) for target in TARGETS}
        for r in range(rounds):
            k = (r + clients) % 3
            for target in TARGETS[k:] + TARGETS[:k]:
                await run_cell(endpoints, level[target], ramp, window, on_message)
        for target in TARGETS:
            cell = level[target].summary()
            cells.append(cell)
            errors = sum(cell["errors"].values())
            log(
                f"  {target:<8} {clients:>3} clients  {cell['messages_per_s']:>7.1f} msg/s  p50 {cell['p50_ms']:>6.0f}"
                f"  p95 {cell['p95_ms']:>6.0f}  p99 {cell['p99_ms']:>6.0f} ms  errors {errors}"
            )
    return cells


def long_conversation_messages(count: int = 300, seed: int = 11) -> List[str]:
    """A resident's long conversation: a question, then none to two follow-ups, over and over (no household check)."""
    rng = random.Random(seed)
    heldout = nlu_examples(sorted((ROOT / "tests" / "nlu").glob("*.yml")))
    pool = [q for intent, qs in sorted(heldout.items()) if intent not in LONG_CONVERSATION_SKIPS for q in qs]
    out: List[str] = []
    while len(out) < count:
        out.append(rng.choice(pool))
        out += [rng.choice(FOLLOW_UPS) for _ in range(rng.choice([0, 1, 1, 2]))]
    return out[:count]


async def conversation_length(
    endpoints: Endpoints, count: int, on_message: Callable[[str], None] | None = None
) -> Dict[str, Any]:
    """One conversation of `count` messages through the gateway, one after another: the latency of each. After each
    one, the same message opens a conversation of its own (the control): a change of load on the machine slows both,
    a longer conversation only the first, so long/control isolates what the length costs."""
    sender = f"long-{uuid.uuid4().hex[:8]}"
    latencies, control, failures = [], [], Counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for i, message in enumerate(long_conversation_messages(count)):
            for conversation, into in ((sender, latencies), (f"{sender}-control-{i}", control)):
                url, payload, headers = endpoints.request("gateway", 0, conversation, message)
                outcome, ms, _ = await post(session, "gateway", url, payload, headers)
                into.append(round(ms, 2))
                if outcome != "ok" and into is latencies:
                    failures[outcome] += 1
                if on_message:
                    on_message("gateway")
    window = min(50, max(1, count // 6))
    first, last = statistics.median(latencies[:window]), statistics.median(latencies[-window:])
    paired = [a / b for a, b in zip(latencies, control, strict=True)]
    paired_first, paired_last = statistics.median(paired[:window]), statistics.median(paired[-window:])
    return {
        "messages": count,
        "window": window,
        "latencies_ms": latencies,
        "control_ms": control,
        "failures": dict(failures),
        "median_first_ms": round(first, 1),
        "median_last_ms": round(last, 1),
        "growth": round(last / first, 3) if first else None,
        "paired_growth": round(paired_last / paired_first, 3) if paired_first else None,
    }


def rolling_median(values: Sequence[float], window: int = 25) -> List[float]:
    half = window // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
