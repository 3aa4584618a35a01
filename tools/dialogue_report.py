"""Summarise a run of the residents' conversations from its JUnit XML:

    pytest -m dialogues --junitxml=results/dialogues.xml
    python tools/dialogue_report.py results/dialogues.xml

prints `dialogues: N passed, M failed (pass rate X%)`, the pass rate of each pattern (file of tests/dialogues/) and
the failed ids with the first line of what failed. The exit code is always 0: pytest's exit code decides.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIALOGUE_DIR = ROOT / "tests" / "dialogues"
CASE = re.compile(r"^test_dialogue\[(?P<id>.+)\]$")


def patterns_by_id() -> Dict[str, str]:
    """Dialogue id → the pattern (file stem) it belongs to; empty if the files cannot be read."""
    found = {}
    for path in sorted(DIALOGUE_DIR.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        for dialogue in data.get("dialogues") or []:
            if isinstance(dialogue, dict) and "id" in dialogue:
                found[str(dialogue["id"])] = path.stem
    return found


def read_results(xml_path: str) -> Tuple[List[str], List[Tuple[str, str]], List[str], Dict[str, str]]:
    """(passed ids, [(failed id, reason)], skipped ids, other test → outcome) of the dialogue runner's test cases."""
    passed, failed, skipped, others = [], [], [], {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        if "test_dialogues" not in case.get("classname", "") and "test_dialogues" not in case.get("file", ""):
            continue
        name = case.get("name", "")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        outcome = "failed" if problem is not None else "skipped" if case.find("skipped") is not None else "passed"
        match = CASE.match(name)
        if not match:
            others[name] = outcome
        elif outcome == "failed":
            failed.append((match["id"], _reason(problem)))
        elif outcome == "skipped":
            skipped.append(match["id"])
        else:
            passed.append(match["id"])
    return passed, failed, skipped, others


def _reason(problem: ET.Element) -> str:
    """The most telling line of a failure: the first FAILED line of the runner's report, else its first line."""
    text = "\n".join(filter(None, [problem.get("message"), problem.text]))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    turn = next((line for line in lines if line.startswith("turn ")), "")
    said = next((line for line in lines if line.startswith("said:")), "")
    failed = next((line for line in lines if line.startswith("FAILED")), "")
    reason = " | ".join(filter(None, [turn, said, failed])) if failed else (lines[0] if lines else "(no message)")
    return re.sub(r"\s+", " ", reason)


def report(xml_path: str) -> str:
    passed, failed, skipped, others = read_results(xml_path)
    total = len(passed) + len(failed)
    rate = 100.0 * len(passed) / total if total else 0.0
    lines = [f"dialogues: {len(passed)} passed, {len(failed)} failed (pass rate {rate:.1f}%)"]
    if skipped:
        lines.append(f"skipped: {len(skipped)}")
    pattern_of = patterns_by_id()
    by_pattern: Dict[str, List[int]] = defaultdict(lambda: [0, 0])
    for dialogue_id in passed:
        by_pattern[pattern_of.get(dialogue_id, "?")][0] += 1
    for dialogue_id, _ in failed:
        by_pattern[pattern_of.get(dialogue_id, "?")][1] += 1
    if by_pattern:
        lines.append("by pattern:")
        for pattern, (ok, bad) in sorted(by_pattern.items()):
            lines.append(f"  {pattern:30s} {ok:4d} passed {bad:4d} failed ({100.0 * ok / (ok + bad):.0f}%)")
    for name, outcome in sorted(others.items()):
        lines.append(f"{name}: {outcome}")
    if failed:
        lines.append("failed:")
        lines += [f"  {dialogue_id} ({pattern_of.get(dialogue_id, '?')}): {why}" for dialogue_id, why in failed]
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    if len(argv) < 2:
        print("usage: python tools/dialogue_report.py RESULTS.xml  (from pytest --junitxml)")
        return 0
    try:
        print(report(argv[1]))
    except (OSError, ET.ParseError) as e:
        print(f"dialogues: no results ({argv[1]}: {e})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
