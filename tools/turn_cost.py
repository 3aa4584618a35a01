"""Cost of a turn late in a long conversation: one conversation of 300 messages through the gateway (/api/chat) of a
stack started here (tools/stack.py); prints the median reply time of messages 1–50 and 251–300 and their ratio.

    .venv/bin/python tools/turn_cost.py                 300 messages, windows of 50
    .venv/bin/python tools/turn_cost.py --messages 120 --window 20
    .venv/bin/python tools/turn_cost.py --profile results/bench/turn_cost_profile.txt    py-spy on Rasa and actions

The messages mix what residents ask (held-out questions of tests/nlu/) with follow-ups (那在省内呢, 要带什么材料, …);
none starts a household check. The per-conversation and per-address limits are off in this stack: 300 messages in a
row is what is measured. For reuse: `messages(n)`, `conversation_latencies(url, texts)`, `TurnCost.of(latencies)`,
`measure(n)` (starts and stops its own stack).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.dialogue import HOUSEHOLD_CUE  # noqa: E402
from tools.stack import ROOT, LocalStack  # noqa: E402

# a verification loop (a household question, or one with 我家…), a hand-off or a bare name would turn the next
# messages into answers to its questions
SKIPPED_INTENTS = {"ask_household", "inform", "forget_verification", "request_human"}
FOLLOW_UPS = ["那在省内呢", "要带什么材料", "找谁办", "孩子上学呢", "那县外呢", "需要多久", "在哪里办"]
# 300 messages in a row from one address: the limits would measure themselves
STACK_ENV = {"ANJU_RATE_LIMIT_BURST": "100000", "ANJU_RATE_LIMIT_PER_IP": "0"}
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")  # [初中](school_level) -> 初中


def questions() -> tuple[list[str], list[str]]:
    """(questions, follow-ups) from the held-out NLU examples, household intents left out."""
    asked, follow_ups = [], list(FOLLOW_UPS)
    for path in sorted((ROOT / "tests" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            if block["intent"] in SKIPPED_INTENTS:
                continue
            lines = [
                ANNOTATION.sub(r"\1", line[2:].strip())
                for line in block["examples"].splitlines()
                if line.startswith("- ")
            ]
            lines = [line for line in lines if not HOUSEHOLD_CUE.search(line)]
            (follow_ups if block["intent"] == "follow_up" else asked).extend(lines)
    return asked, follow_ups


def messages(n: int, seed: int = 12) -> list[str]:
    """n messages of one resident: a question, then as often as not a follow-up on it."""
    rng = random.Random(seed)
    asked, follow_ups = questions()
    out: list[str] = []
    while len(out) < n:
        out.append(rng.choice(asked))
        if rng.random() < 0.5:
            out.append(rng.choice(follow_ups))
    return out[:n]


async def conversation_latencies(
    url: str, texts: Sequence[str], sender: str | None = None, door: str = "/api/chat"
) -> list[float]:
    """Sends texts one after another in one conversation; seconds each reply took. Fails on any reply that is not
    HTTP 200 with text (a slow error is no measurement)."""
    sender = sender or f"turn-cost-{uuid.uuid4().hex[:12]}"
    latencies = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for i, text in enumerate(texts, 1):
            started = time.perf_counter()
            async with session.post(url + door, json={"sender": sender, "message": text}) as response:
                body = await response.json(content_type=None)
            latencies.append(time.perf_counter() - started)
            if response.status != 200 or not any(isinstance(x, dict) and x.get("text") for x in body):
                raise RuntimeError(f"message {i} {text!r}: HTTP {response.status} {body!r}")
    return latencies


@dataclass(frozen=True)
class TurnCost:
    first_ms: float  # median of the first `window` messages
    last_ms: float  # median of the last `window` messages
    window: int
    messages: int

    @property
    def ratio(self) -> float:
        return self.last_ms / self.first_ms

    @classmethod
    def of(cls, latencies: Sequence[float], window: int = 50) -> TurnCost:
        if len(latencies) < 2 * window:
            raise ValueError(f"need at least {2 * window} messages, got {len(latencies)}")
        ms = [x * 1000 for x in latencies]
        return cls(statistics.median(ms[:window]), statistics.median(ms[-window:]), window, len(ms))

    def __str__(self) -> str:
        n, w = self.messages, self.window
        return (
            f"messages 1–{w}: median {self.first_ms:.0f} ms   messages {n - w + 1}–{n}: median {self.last_ms:.0f} ms"
            f"   ratio {self.ratio:.2f}"
        )


def measure(
    n: int = 300, window: int = 50, work: Path | None = None, on_start: Callable[[LocalStack], None] | None = None
) -> TurnCost:
    """Starts a stack (in `work`, or a temporary folder), warms it up with a short conversation of its own, then times
    one conversation of n messages. on_start(stack) runs once the stack is up (to attach a profiler)."""
    with tempfile.TemporaryDirectory(prefix="anju-turn-cost-") as tmp:
        with LocalStack(work or Path(tmp), env=STACK_ENV) as stack:
            asyncio.run(conversation_latencies(stack.url, messages(5, seed=1)))  # first-call costs out of the way
            if on_start:
                on_start(stack)
            return TurnCost.of(asyncio.run(conversation_latencies(stack.url, messages(n))), window)


class Profiles:
    """py-spy sampling the Rasa server and the action server while the conversation runs (raw collapsed stacks), and
    the functions that took the most of each: `Profiles(out).attach(stack)`, then `.stop()` → a text summary."""

    def __init__(self, out: Path, names: Sequence[str] = ("rasa", "actions")):
        self.out, self.names = out, names
        self.out.mkdir(parents=True, exist_ok=True)
        self.spies: dict[str, subprocess.Popen] = {}

    def attach(self, stack: LocalStack) -> None:
        spy = str(Path(sys.executable).parent / "py-spy")
        for name in self.names:
            raw = self.out / f"turn_cost_{name}.raw"
            command = [spy, "record", "--pid", str(stack.processes[name].pid), "--format", "raw", "--output", str(raw)]
            self.spies[name] = subprocess.Popen(
                [*command, "--rate", "50", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

    def stop(self, top: int = 40) -> str:
        lines = []
        for name, spy in self.spies.items():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            spy.wait(timeout=60)
            lines += [f"== {name}", *summarise(self.out / f"turn_cost_{name}.raw", top), ""]
        return "\n".join(lines)


# a sample whose innermost frame is one of these is a process waiting for work (the event loop in C, an idle thread)
IDLE = ("serve (sanic/server/runners.py:", "_worker (concurrent/futures/thread.py:")


def summarise(raw: Path, top: int) -> list[str]:
    """Of the samples in which the process was working: the share in which each function was on the stack
    (inclusive; the entry frames every such sample shares left out), and where the time itself went (self)."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f]
        if not frames or not count.isdigit() or frames[-1].startswith(IDLE):
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    share = lambda n: f"{100 * n / max(total, 1):5.1f}%"  # noqa: E731
    shown = [(frame, n) for frame, n in inclusive.most_common() if n < 0.97 * total][:top]
    return [
        f"{total} samples at 50/s while working ({total / 50:.0f} s)",
        "inclusive:",
        *(f"  {share(n)}  {frame}" for frame, n in shown),
        "self:",
        *(f"  {share(n)}  {frame}" for frame, n in own.most_common(top // 2)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--work", type=Path, help="keep the stack's databases and logs here")
    parser.add_argument("--profile", type=Path, help="py-spy the Rasa and action servers; their top functions here")
    args = parser.parse_args()
    profiles = Profiles(args.profile.parent) if args.profile else None
    cost = measure(args.messages, args.window, args.work, on_start=profiles.attach if profiles else None)
    print(cost)
    if profiles:
        args.profile.write_text(f"tools/turn_cost.py --messages {args.messages}: {cost}\n\n{profiles.stop()}")
        print(f"profile: {args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
