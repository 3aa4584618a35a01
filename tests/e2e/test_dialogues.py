"""Residents' multi-turn conversations (tests/dialogues/*.yml) against the real gateway, Rasa and action servers: the
yardstick for the dialogue mechanics. Every dialogue runs with a fresh sender; every turn must get a non-empty reply
and meet its expectations. tests/test_dialogue_files.py checks the files themselves, without servers, and
`python tools/dialogue_report.py results.xml` summarises a `--junitxml` run.

    make test                                   # runs these with the other e2e tests
    pytest -m dialogues --junitxml=results/dialogues.xml && python tools/dialogue_report.py results/dialogues.xml
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import requests
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.dialogues]

DIALOGUE_DIR = Path(__file__).resolve().parent.parent / "dialogues"
TIMEOUT_SECONDS = 30


def load_dialogues() -> List[Dict[str, Any]]:
    """Every dialogue of every file, with the file's stem as its `pattern`."""
    dialogues = []
    for path in sorted(DIALOGUE_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for dialogue in data.get("dialogues") or []:
            dialogues.append({**dialogue, "pattern": path.stem})
    return dialogues


DIALOGUES = load_dialogues()


def new_sender(dialogue_id: str) -> str:
    return f"dlg-{dialogue_id}-{uuid.uuid4().hex[:8]}"


def post(gateway, sender: str, channel: str, message: str) -> Tuple[int, Any]:
    door = "/api/chat" if channel == "api" else f"/api/{channel}/chat"  # each door has its own route
    response = requests.post(
        f"{gateway.url}{door}", json={"sender": sender, "message": message}, timeout=TIMEOUT_SECONDS
    )
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def reply_text(body: Any) -> str:
    if not isinstance(body, list):
        return ""
    return "\n".join(str(r.get("text") or "") for r in body if isinstance(r, dict)).strip()


def button_titles(body: Any) -> List[str]:
    if not isinstance(body, list):
        return []
    return [
        str(button.get("title") or "")
        for r in body
        if isinstance(r, dict)
        for button in r.get("buttons") or []
        if isinstance(button, dict)
    ]


def problems_with(turn: Dict[str, Any], status: int, body: Any) -> List[str]:
    """What this reply fails of the turn's expectations (empty: it passes)."""
    text, buttons = reply_text(body), button_titles(body)
    problems = []
    if status != 200:
        problems.append(f"HTTP {status}, not 200")
    if not isinstance(body, list):
        problems.append("the reply is not a list of messages")
    if not text:
        problems.append("empty reply: no message with text (the assistant must never be silent)")
    if turn.get("expect_any") and not any(s in text for s in turn["expect_any"]):
        problems.append(f"expect_any: none of {turn['expect_any']} is in the reply")
    missing = [s for s in turn.get("expect_all") or [] if s not in text]
    if missing:
        problems.append(f"expect_all: {missing} missing from the reply")
    present = [s for s in turn.get("expect_none") or [] if s in text]
    if present:
        problems.append(f"expect_none: {present} must not be in the reply")
    wanted = turn.get("buttons_any")
    if wanted and not any(w in title for title in buttons for w in wanted):
        problems.append(f"buttons_any: no button title contains any of {wanted} (buttons: {buttons})")
    return problems


def failure_report(dialogue: Dict[str, Any], index: int, turn, status, body, problems, transcript) -> str:
    lines = [
        f"dialogue {dialogue['id']} ({dialogue['pattern']}, {dialogue['channel']}): {dialogue.get('note', '')}",
        f"turn {index + 1} of {len(dialogue['turns'])} failed",
        f"  said:    {turn['say']}",
        f"  replied: {reply_text(body) or repr(body)}",
    ]
    if button_titles(body):
        lines.append(f"  buttons: {button_titles(body)}")
    lines += [f"  FAILED   {p}" for p in problems]
    if transcript:
        lines.append("earlier turns:")
        for n, (said, replied) in enumerate(transcript, 1):
            lines.append(f"  {n}. > {said}")
            lines += [f"       {line}" for line in replied.splitlines()]
    return "\n".join(lines)


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=[d["id"] for d in DIALOGUES])
def test_dialogue(gateway, dialogue):
    sender = new_sender(dialogue["id"])
    transcript: List[Tuple[str, str]] = []
    for index, turn in enumerate(dialogue["turns"]):
        try:
            status, body = post(gateway, sender, dialogue["channel"], turn["say"])
        except requests.RequestException as e:
            status, body = 0, f"no answer within {TIMEOUT_SECONDS} s: {e!r}"
        problems = problems_with(turn, status, body)
        if problems:
            pytest.fail(failure_report(dialogue, index, turn, status, body, problems, transcript), pytrace=False)
        transcript.append((turn["say"], reply_text(body)))


def test_no_turn_is_ever_empty(gateway):
    """The first turn of every dialogue, each with a fresh sender: never an empty reply, on either door."""
    silent = []
    for dialogue in DIALOGUES:
        said = dialogue["turns"][0]["say"]
        try:
            status, body = post(gateway, new_sender(dialogue["id"]), dialogue["channel"], said)
        except requests.RequestException as e:
            status, body = 0, repr(e)
        if status != 200 or not reply_text(body):
            silent.append(f"{dialogue['id']} ({dialogue['channel']}): {said!r} → HTTP {status}, {body!r}")
    assert not silent, f"{len(silent)} of {len(DIALOGUES)} first turns got no text:\n" + "\n".join(silent)
