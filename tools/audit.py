"""Known vulnerabilities in the locks (make audit): pip-audit over each lock, and an offline check of the ones we know.

    .venv-gateway/bin/python tools/audit.py requirements.lock requirements-gateway.lock

Two sources, because neither is enough alone:
- pip-audit asks PyPI's vulnerability data (the JSON API) about every pin. Where that API is not reachable (some
  machines reach only the package index), pip-audit audits nothing and says so; this script then says so too, loudly,
  and goes on with the offline check (ANJU_AUDIT_ONLINE=required makes it a failure instead).
- security/known-vulnerabilities.txt lists advisories known to affect a pin, each with its affected versions and the
  reason it is accepted. It is checked offline, on every run. An advisory is accepted only in requirements.lock (Rasa
  and the action server, which listen on loopback only); in requirements-gateway.lock, the public door, it fails.

Exit 1 on any unaccepted vulnerability, on a pin pip-audit could not audit while others were audited, or on a listed
advisory that no longer matches any pin (the list must say what is true).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
KNOWN = ROOT / "security" / "known-vulnerabilities.txt"
PUBLIC_LOCK = "requirements-gateway.lock"


@dataclass(frozen=True)
class Known:
    id: str
    package: str
    affected: SpecifierSet
    reason: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> Dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            pins[canonical(m.group(1))] = m.group(2)
    return pins


def read_known(path: Path = KNOWN) -> List[Known]:
    """`ID package affected-versions reason…` per line; # starts a comment."""
    known = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()  # reasons carry no "#"
        if not line:
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            raise SystemExit(f"{path.name}:{number}: want `ID package affected-versions reason`, got {line!r}")
        known.append(Known(parts[0], canonical(parts[1]), SpecifierSet(parts[2]), parts[3]))
    return known


def offline_check(locks: Dict[str, Dict[str, str]], known: Iterable[Known]) -> Tuple[List[str], List[str]]:
    """(problems, accepted): the listed advisories against the pins of every lock."""
    problems, accepted = [], []
    for entry in known:
        matched = False
        for lock, pins in locks.items():
            version = pins.get(entry.package)
            if version is None or Version(version) not in entry.affected:
                continue
            matched = True
            where = f"{entry.id} {entry.package}=={version} in {lock}"
            if lock == PUBLIC_LOCK:
                problems.append(f"{where}: the gateway is the public door, upgrade it there ({entry.reason})")
            else:
                accepted.append(f"{where}: {entry.reason}")
        if not matched:
            problems.append(f"{entry.id} ({entry.package} {entry.affected}) matches no pin any more: remove it")
    return problems, accepted


def interpret(lock: str, report: dict, known: Iterable[Known]) -> Tuple[List[str], List[str], int, int]:
    """pip-audit's JSON report for one lock: (problems, accepted, audited, skipped)."""
    by_id = {}
    for entry in known:
        by_id[(entry.package, entry.id)] = entry
    problems, accepted = [], []
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dep in dependencies:
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            name = canonical(dep["name"])
            entry = next((by_id[(name, i)] for i in ids if (name, i) in by_id), None)
            where = f"{'/'.join(ids)} {dep['name']}=={dep['version']} in {lock} (fixed in {vuln.get('fix_versions')})"
            if entry is None:
                problems.append(f"{where}: not in {KNOWN.name}; upgrade, or list it there with the reason")
            elif lock == PUBLIC_LOCK:
                problems.append(f"{where}: the gateway is the public door, upgrade it there")
            else:
                accepted.append(f"{where}: {entry.reason}")
    return problems, accepted, len(dependencies) - len(skipped), len(skipped)


def pip_audit(lock: Path) -> dict:
    command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"]
    command += ["--vulnerability-service", "pypi", "--progress-spinner", "off", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    try:
        return json.loads(done.stdout)
    except ValueError as e:
        raise SystemExit(
            f"pip-audit gave no report for {lock.name} (exit {done.returncode}):\n{done.stderr[-2000:]}"
        ) from e


def main(argv: List[str]) -> int:
    paths = [ROOT / a for a in argv] or [ROOT / "requirements.lock", ROOT / PUBLIC_LOCK]
    locks = {p.name: read_lock(p) for p in paths}
    known = read_known()
    problems, accepted = offline_check(locks, known)
    unreachable = []
    for path in paths:
        report = pip_audit(path)
        found, ok, audited, skipped = interpret(path.name, report, known)
        if audited == 0 and skipped:
            unreachable.append(path.name)
        elif skipped:
            problems.append(f"{path.name}: pip-audit could not audit {skipped} of {skipped + audited} pins")
        problems += found
        accepted += [a for a in ok if a not in accepted]
        print(f"{path.name}: {len(locks[path.name])} pins; pip-audit audited {audited}, could not audit {skipped}")
    for line in dict.fromkeys(accepted):
        print(f"accepted  {line}")
    if unreachable:
        print(
            f"NOT AUDITED ONLINE: {', '.join(unreachable)}: PyPI's vulnerability data (its JSON API) is not reachable "
            f"from this machine, so pip-audit checked nothing; only {KNOWN.name} was checked (offline)."
        )
        if os.environ.get("ANJU_AUDIT_ONLINE") == "required":
            problems.append("ANJU_AUDIT_ONLINE=required, and the online audit could not run")
    for line in problems:
        print(f"PROBLEM   {line}")
    print("audit: " + ("failed" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
