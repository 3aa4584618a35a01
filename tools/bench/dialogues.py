"""The residents' conversations of tests/dialogues/ through the bench's own gateway, judged by the very functions of
tests/e2e/test_dialogues.py, written as JUnit XML so tools/dialogue_report.py summarises them as it does for
`make test-dialogues` (which runs them under pytest, on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import requests

from tests.e2e import test_dialogues as suite
from tools import dialogue_report


def run(gateway_url: str, out_xml: Path, every: int = 1) -> Dict[str, Any]:
    """Every `every`-th dialogue (1: all), each with a fresh sender; the pass rate and the summary by pattern."""
    gateway = SimpleNamespace(url=gateway_url)
    chosen = suite.DIALOGUES[::every]
    root = ET.Element("testsuites")
    cases = ET.SubElement(root, "testsuite", name="bench-dialogues")
    failed: List[str] = []
    started = time.monotonic()
    for dialogue in chosen:
        case = ET.SubElement(
            cases, "testcase", classname="tests.e2e.test_dialogues", name=f"test_dialogue[{dialogue['id']}]"
        )
        t0 = time.monotonic()
        problem = _first_problem(gateway, dialogue)
        case.set("time", f"{time.monotonic() - t0:.3f}")
        if problem:
            failed.append(dialogue["id"])
            ET.SubElement(case, "failure", message=problem.splitlines()[0]).text = problem
    cases.set("tests", str(len(chosen)))
    cases.set("failures", str(len(failed)))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out_xml, encoding="utf-8", xml_declaration=True)
    total = len(chosen)
    return {
        "dialogues": total,
        "of": len(suite.DIALOGUES),
        "turns": sum(len(d["turns"]) for d in chosen),
        "passed": total - len(failed),
        "pass_rate": round((total - len(failed)) / total, 4) if total else None,
        "seconds": round(time.monotonic() - started, 1),
        "summary": dialogue_report.report(str(out_xml)),
    }


def _first_problem(gateway, dialogue: Dict[str, Any]) -> str:
    """The runner's failure report for the first turn that misses its expectations; empty when all turns pass."""
    sender = suite.new_sender(dialogue["id"])
    transcript = []
    for index, turn in enumerate(dialogue["turns"]):
        try:
            status, body = suite.post(gateway, sender, dialogue["channel"], turn["say"])
        except requests.RequestException as e:
            status, body = 0, f"no answer within {suite.TIMEOUT_SECONDS} s: {e!r}"
        problems = suite.problems_with(turn, status, body)
        if problems:
            return suite.failure_report(dialogue, index, turn, status, body, problems, transcript)
        transcript.append((turn["say"], suite.reply_text(body)))
    return ""
