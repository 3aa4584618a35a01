"""Imports a synthetic ledger of about N members (tools/make_demo_ledger.py, whole households) into a fresh SQLite
database, timed; prints the figures as JSON on the last line, with this process's peak memory. Run by `make bench`
in a child of its own, so the peak is the import's:

    .venv/bin/python -m tools.bench.ledger_import --members 5000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bot import db, migrate
from bot.importer import import_ledger
from tools.make_demo_ledger import HOUSEHOLD_HEADERS, MEMBER_HEADERS, household_rows, write_csv
from tools.stack import rss_mb


def ledger(members: int):
    """The first households of the synthetic ledger that hold at least `members` members."""
    households, people = household_rows(max(10, members // 2))
    kept, count = set(), 0
    for person in people:
        if count >= members and person["户编号"] not in kept:
            break
        kept.add(person["户编号"])
        count += 1
    return [h for h in households if h["户编号"] in kept], [p for p in people if p["户编号"] in kept]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anju-bench-import-") as tmp:
        tmp = Path(tmp)
        households, members = ledger(args.members)
        write_csv(tmp / "households.csv", HOUSEHOLD_HEADERS, households)
        write_csv(tmp / "members.csv", MEMBER_HEADERS, members)
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        migrate.upgrade(url)
        before = rss_mb(os.getpid())  # the modules, the rows in memory and the CSV files written: not the import
        started = time.perf_counter()
        with db.session_scope(url) as session:
            report = import_ledger(session, tmp / "households.csv", tmp / "members.csv")
        seconds = time.perf_counter() - started
        db.dispose(url)
    # VmHWM, not getrusage's ru_maxrss: that one survives exec and so starts at the forking parent's size
    peak = _status_mb("VmHWM")
    print(f"{len(households)} households, {len(members)} members: {seconds:.2f} s; {report.summary()}")
    figures = {
        "households": len(households),
        "members": len(members),
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
    }
    print(json.dumps(figures))
    return 0


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
