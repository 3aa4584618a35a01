"""The two locks and the dependency audit (tools/audit.py): the gateway's virtualenv shares every pin with Rasa's but
aiohttp's family and the audit tool's own; a known advisory is accepted only on Rasa's loopback side, never at the
public door; pip-audit's findings are read the same way, and a report that audited nothing is told apart."""

import importlib.util
import sys

import pytest
from packaging.specifiers import SpecifierSet

from bot.settings import ROOT

spec = importlib.util.spec_from_file_location("audit", ROOT / "tools" / "audit.py")
audit = sys.modules["audit"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

RASA, GATEWAY = audit.read_lock(ROOT / "requirements.lock"), audit.read_lock(ROOT / "requirements-gateway.lock")
# allowed to differ: aiohttp and what it brings, and pip-audit's own needs (Rasa pins CacheControl <0.13, packaging <21)
MAY_DIFFER = {"aiohttp", "multidict", "async-timeout", "attrs", "pytest-aiohttp", "cachecontrol", "packaging"}
SMUGGLING = audit.Known("GHSA-8495-4g3g-x7pr", "aiohttp", SpecifierSet("<3.10.11"), "client only, loopback")


def test_the_gateway_runs_a_current_aiohttp_and_otherwise_the_same_pins():
    assert int(GATEWAY["aiohttp"].split(".")[1]) >= 13 and RASA["aiohttp"].startswith("3.9.")
    differ = {name for name in RASA.keys() & GATEWAY.keys() if RASA[name] != GATEWAY[name]}
    assert differ <= MAY_DIFFER, {name: (RASA[name], GATEWAY[name]) for name in differ - MAY_DIFFER}
    assert "rasa" not in GATEWAY and "pip-audit" in GATEWAY


def test_the_listed_advisories_hold_for_the_real_locks():
    problems, accepted = audit.offline_check(
        {"requirements.lock": RASA, audit.PUBLIC_LOCK: GATEWAY}, audit.read_known()
    )
    assert problems == []
    assert accepted and all("in requirements.lock" in line for line in accepted)


def test_a_known_advisory_is_accepted_on_rasas_side_only():
    locks = {"requirements.lock": {"aiohttp": "3.9.5"}, audit.PUBLIC_LOCK: {"aiohttp": "3.9.5"}}
    problems, accepted = audit.offline_check(locks, [SMUGGLING])
    assert len(accepted) == 1 and "requirements.lock" in accepted[0]
    assert len(problems) == 1 and "public door" in problems[0]


def test_an_advisory_that_matches_no_pin_must_be_removed():
    problems, _ = audit.offline_check({"requirements.lock": {"aiohttp": "3.14.5"}}, [SMUGGLING])
    assert problems and "remove it" in problems[0]


REPORT = {
    "dependencies": [
        {"name": "aiohttp", "version": "3.9.5", "vulns": [{"id": "PYSEC-X", "aliases": ["GHSA-8495-4g3g-x7pr"]}]},
        {"name": "Jinja2", "version": "3.0.0", "vulns": [{"id": "GHSA-new", "aliases": [], "fix_versions": ["3.1"]}]},
        {"name": "yarl", "version": "1.0", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]
}


@pytest.mark.parametrize("lock", ["requirements.lock", audit.PUBLIC_LOCK])
def test_pip_audit_findings_are_accepted_only_when_listed_and_on_rasas_side(lock):
    problems, accepted, audited, skipped = audit.interpret(lock, REPORT, [SMUGGLING])
    assert (audited, skipped) == (2, 1)
    assert any("GHSA-new" in p and "not in" in p for p in problems)  # an advisory nobody has looked at fails
    if lock == "requirements.lock":
        assert len(accepted) == 1 and "GHSA-8495-4g3g-x7pr" in accepted[0] and len(problems) == 1
    else:
        assert accepted == [] and len(problems) == 2


def test_a_report_that_audited_nothing_is_told_apart():
    report = {"dependencies": [{"name": n, "version": "1", "skip_reason": "not found"} for n in ("a", "b")]}
    assert audit.interpret("requirements.lock", report, [])[2:] == (0, 2)
