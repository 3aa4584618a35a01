"""Soak: N residents at once through the gateway for M minutes, on loopback, against the whole stack started here.
Prints errors and the memory of every process after warm-up and at the end; asserts nothing (a benchmark, not a test).

    make soak                                   20 concurrent conversations for 20 minutes
    make soak SOAK_MINUTES=2 SOAK_CLIENTS=5     a short look

Each client opens a new conversation every 3 messages, as residents do, and mixes what residents ask: held-out
questions (tests/nlu/), follow-ups, and a household check with the demo ledger. An error is any reply that is not
HTTP 200 with text. Memory growth = (mean RSS over the last fifth) / (mean RSS over the fifth after warm-up) - 1,
warm-up being the first quarter of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.stack import ROOT, LocalStack  # noqa: E402

FOLLOW_UPS = ["那在省内呢", "要带什么材料", "找谁办", "孩子上学呢", "谢谢"]
HOUSEHOLD = ["我家能领什么补贴", "张三", "125447"]


def questions() -> list[str]:
    out = []
    for path in sorted((ROOT / "tests" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            out += [line[2:].strip() for line in block["examples"].splitlines() if line.startswith("- ")]
    return out


class Load:
    def __init__(self, url: str, clients: int, seconds: float, seed: int = 7):
        self.url, self.clients, self.seconds = url, clients, seconds
        self.random = random.Random(seed)
        self.questions = questions()
        self.latencies: list[float] = []
        self.outcomes: Counter = Counter()
        self.errors: list[str] = []

    def conversation(self) -> list[str]:
        if self.random.random() < 0.15:
            return HOUSEHOLD
        return [self.random.choice(self.questions), self.random.choice(FOLLOW_UPS), self.random.choice(self.questions)]

    async def client(self, session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            sender = f"soak-{uuid.uuid4().hex[:12]}"
            door = self.random.choice(["/api/chat", "/api/web/chat", "/api/kiosk/chat"])
            for message in self.conversation():
                started = time.perf_counter()
                try:
                    async with session.post(self.url + door, json={"sender": sender, "message": message}) as r:
                        body = await r.json(content_type=None)
                        ok = r.status == 200 and any(isinstance(x, dict) and x.get("text") for x in body)
                        outcome = "ok" if ok else f"HTTP {r.status}" + ("" if r.status != 200 else " without text")
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                    outcome = e.__class__.__name__
                self.latencies.append(time.perf_counter() - started)
                self.outcomes[outcome] += 1
                if outcome != "ok" and len(self.errors) < 20:
                    self.errors.append(f"{outcome}: {message!r}")

    async def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self.client(session, deadline) for _ in range(self.clients)))


async def sample_memory(stack: LocalStack, seconds: float, every: float, samples: list) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((time.monotonic(), stack.rss_mb()))
        await asyncio.sleep(every)


async def soak(stack: LocalStack, clients: int, minutes: float) -> int:
    seconds = minutes * 60
    load = Load(stack.url, clients, seconds)
    samples: list = []
    started = time.monotonic()
    await asyncio.gather(load.run(), sample_memory(stack, seconds, max(2.0, seconds / 120), samples))
    elapsed = time.monotonic() - started

    total = sum(load.outcomes.values())
    errors = total - load.outcomes["ok"]
    ms = sorted(x * 1000 for x in load.latencies) or [0.0]
    pct = lambda p: ms[min(len(ms) - 1, int(p / 100 * len(ms)))]  # noqa: E731
    print(f"\nsoak: {clients} concurrent conversations for {elapsed / 60:.1f} min on loopback")
    print(f"messages {total}  ({total / elapsed:.1f}/s)   errors {errors}   {dict(load.outcomes)}")
    print(f"latency ms  p50 {pct(50):.0f}  p95 {pct(95):.0f}  p99 {pct(99):.0f}  max {ms[-1]:.0f}")
    for line in load.errors:
        print("  error:", line)

    n = len(samples)
    warm = [s for t, s in samples if t - samples[0][0] >= 0.25 * seconds]
    fifth = max(1, len(warm) // 5)
    print("\nmemory (RSS, MB)   after warm-up   end     growth")
    worst = 0.0
    for name in samples[-1][1] if n else []:
        after = statistics.mean(s.get(name, 0) for s in warm[:fifth])
        end = statistics.mean(s.get(name, 0) for s in warm[-fifth:])
        growth = end / after - 1 if after else 0.0
        worst = max(worst, growth)
        print(f"  {name:<16} {after:>10.0f}   {end:>6.0f}   {growth:+.1%}")
    print(f"\nheadline: {errors} errors in {total} messages; largest memory growth after warm-up {worst:+.1%}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anju-soak-") as tmp:
        print(f"starting the stack in {tmp} …", flush=True)
        with LocalStack(Path(tmp)) as stack:
            print(f"up: {stack.url}; memory at start (MB): {stack.rss_mb()}", flush=True)
            return asyncio.run(soak(stack, args.clients, args.minutes))


if __name__ == "__main__":
    sys.exit(main())
