"""Import benchmark: a synthetic ledger the size of 广惠园 (1773 households), imported into a fresh database, then
imported again (every row matched, nothing changed). Prints the figures; asserts nothing.

    make bench-import                       SQLite, and PostgreSQL too when TEST_POSTGRES_URL is set
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import db, migrate  # noqa: E402
from bot.importer import import_ledger  # noqa: E402
from tools.make_demo_ledger import HOUSEHOLD_HEADERS, MEMBER_HEADERS, household_rows, write_csv  # noqa: E402


def run(url: str, households: Path, members: Path) -> None:
    migrate.drop_all(url)
    migrate.upgrade(url)
    figures = []
    for label in ("first import", "re-import"):
        start = time.perf_counter()
        with db.session_scope(url) as session:
            report = import_ledger(session, households, members)
        figures.append(f"{label} {time.perf_counter() - start:.2f} s ({report.summary()})")
    db.dispose(url)
    print(f"{url.split(':')[0]:<11} " + "; ".join(figures))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        h, m = household_rows(1773)
        write_csv(tmp / "households.csv", HOUSEHOLD_HEADERS, h)
        write_csv(tmp / "members.csv", MEMBER_HEADERS, m)
        print(f"ledger: {len(h)} households, {len(m)} members")
        run(f"sqlite:///{tmp / 'bench.sqlite3'}", tmp / "households.csv", tmp / "members.csv")
        if os.environ.get("TEST_POSTGRES_URL"):
            run(os.environ["TEST_POSTGRES_URL"], tmp / "households.csv", tmp / "members.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
