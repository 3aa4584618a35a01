"""Full path against bare parse, in one run: messages/s through the gateway (/api/chat) and through the parse of one
Rasa server (/webhooks/gateway/parse), each at N concurrent clients, on a stack started here (tools/stack.py) with
ANJU_RASA_REPLICAS Rasa servers. Prints both rates, the errors and their ratio (issue 12 asks for at least 0.6 at 20
clients with 0 errors); asserts nothing. `make bench` measures the same and more; this is the quick look.

    .venv/bin/python tools/scale_ratio.py                          1 Rasa server, 20 clients, 2 × 20 s a target
    ANJU_RASA_REPLICAS=2 .venv/bin/python tools/scale_ratio.py     2 Rasa servers behind the gateway
    ANJU_RASA_REPLICAS=2 REDIS_URL=redis://… .venv/bin/python tools/scale_ratio.py --database-url postgresql://…
                                                                 the scaled layout: PostgreSQL, Redis's lock store

The targets take turns (parse, gateway, gateway, parse) so that a neighbour's load on a shared machine falls on both.
Each client opens a new conversation every 3 messages (tools/soak.py's mix, the household check included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.soak import FOLLOW_UPS, HOUSEHOLD, questions  # noqa: E402
from tools.stack import LocalStack  # noqa: E402

STACK_ENV = {"ANJU_RATE_LIMIT_PER_IP": "0", "ANJU_RATE_LIMIT_BURST": "1000000"}


class Cell:
    def __init__(self) -> None:
        self.answered = 0
        self.elapsed = 0.0
        self.outcomes: Counter = Counter()


def conversation(rng: random.Random, asked: list[str]) -> list[str]:
    if rng.random() < 0.15:
        return list(HOUSEHOLD)
    return [rng.choice(asked), rng.choice(FOLLOW_UPS), rng.choice(asked)]


async def run(target: str, stack: LocalStack, token: str, clients: int, seconds: float, cell: Cell) -> None:
    asked = questions()
    headers = {"Authorization": f"Bearer {token}"}
    parse_url = stack.rasa_urls[0] + "/webhooks/gateway/parse"

    async def client(session: aiohttp.ClientSession, i: int, deadline: float) -> None:
        rng = random.Random(i)
        while time.monotonic() < deadline:
            sender = f"ratio-{uuid.uuid4().hex[:10]}"
            for message in conversation(rng, asked):
                if time.monotonic() >= deadline:
                    return
                try:
                    if target == "parse":
                        async with session.post(parse_url, json={"text": message}, headers=headers) as r:
                            body = await r.json(content_type=None)
                            ok = r.status == 200 and isinstance(body, dict) and "intent" in body
                    else:
                        payload = {"sender": sender, "message": message}
                        async with session.post(f"{stack.url}/api/chat", json=payload) as r:
                            body = await r.json(content_type=None)
                            ok = r.status == 200 and any(isinstance(x, dict) and x.get("text") for x in body)
                    outcome = "ok" if ok else f"HTTP {r.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                    outcome = type(e).__name__
                cell.outcomes[outcome] += 1
                cell.answered += outcome == "ok"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session, i, started + seconds) for i in range(clients)))
        cell.elapsed += time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20, help="per turn; each target runs two turns")
    parser.add_argument("--database-url", help="ledger and conversations there (default: SQLite files of the run)")
    args = parser.parse_args()
    cells = {"parse": Cell(), "gateway": Cell()}
    env = {**STACK_ENV, **({"DATABASE_URL": args.database_url} if args.database_url else {})}
    with tempfile.TemporaryDirectory(prefix="anju-ratio-") as work, LocalStack(Path(work), env=env) as stack:
        token = stack.token()
        database = "PostgreSQL" if args.database_url else "SQLite"
        locks = "Redis lock store" if stack.env.get("REDIS_URL") else "locks in memory"
        print(f"{len(stack.rasa_urls)} Rasa server(s) ({database}, {locks}): {', '.join(stack.rasa_urls)}", flush=True)
        for target in ("gateway", "parse"):  # warm-up, not measured
            asyncio.run(run(target, stack, token, 2, 5, Cell()))
        for target in ("parse", "gateway", "gateway", "parse"):
            asyncio.run(run(target, stack, token, args.clients, args.seconds, cells[target]))
    rates = {}
    for target, cell in cells.items():
        rates[target] = cell.answered / cell.elapsed
        errors = {k: v for k, v in cell.outcomes.items() if k != "ok"}
        print(f"{target:<8} {args.clients} clients: {rates[target]:6.1f} messages/s  errors {errors or 0}")
    print(f"ratio gateway / bare parse: {rates['gateway'] / rates['parse']:.2f}  (replicas={len(stack.rasa_urls)})")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
