"""The deployment's secret and the seal on a verified household (bot/sealing.py)."""

import stat
from concurrent.futures import ProcessPoolExecutor

import pytest

from bot import sealing, settings


@pytest.fixture
def secret_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ANJU_SECRET_KEY", raising=False)
    path = tmp_path / "run" / "secret.key"
    monkeypatch.setenv("ANJU_SECRET_FILE", str(path))
    return path


def _read_secret(path: str) -> bytes:
    import os

    os.environ.pop("ANJU_SECRET_KEY", None)
    os.environ["ANJU_SECRET_FILE"] = path
    return sealing.secret()


def test_the_secret_file_is_made_once_and_readable_by_its_owner_only(secret_file):
    first = sealing.secret()
    assert len(first) == 64 and sealing.secret() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700


def test_processes_starting_together_share_one_secret(secret_file):
    with ProcessPoolExecutor(4) as pool:
        secrets = set(pool.map(_read_secret, [str(secret_file)] * 8))
    assert len(secrets) == 1 and secrets == {secret_file.read_bytes().strip()}


def test_the_environment_wins_over_the_file(secret_file, monkeypatch):
    monkeypatch.setenv("ANJU_SECRET_KEY", "from-the-environment")
    assert sealing.secret() == b"from-the-environment"
    assert not secret_file.exists()


def test_the_rasa_token_is_derived_unless_set(monkeypatch):
    monkeypatch.setenv("ANJU_SECRET_KEY", "one")
    one = sealing.rasa_token()
    monkeypatch.setenv("ANJU_SECRET_KEY", "two")
    assert sealing.rasa_token() != one and len(one) == 64
    monkeypatch.setenv("ANJU_RASA_TOKEN", "chosen")
    assert sealing.rasa_token() == "chosen"


def test_a_seal_opens_only_in_its_conversation_until_it_runs_out(monkeypatch):
    monkeypatch.setenv("ANJU_VERIFIED_MINUTES", "30")
    sealed = sealing.seal("GHY00001", "web:abc", now=1_000_000)
    assert sealing.unseal(sealed, "web:abc", now=1_000_000 + 29 * 60) == "GHY00001"
    assert sealing.unseal(sealed, "web:abc", now=1_000_000 + 31 * 60) is None  # ran out
    assert sealing.unseal(sealed, "api:abc", now=1_000_000) is None  # another conversation
    household, expiry, mac = sealed.split("|")
    for forged in (
        f"GHY00002|{expiry}|{mac}",  # another household under the same seal
        f"{household}|{int(expiry) + 3600}|{mac}",  # a later expiry
        "GHY00001",
        "",
        None,
        "a|b|c",
    ):
        assert sealing.unseal(forged, "web:abc", now=1_000_000) is None, forged


def test_a_new_secret_breaks_every_seal(monkeypatch):
    monkeypatch.setenv("ANJU_SECRET_KEY", "before")
    sealed = sealing.seal("GHY00001", "c")
    monkeypatch.setenv("ANJU_SECRET_KEY", "after")
    assert sealing.unseal(sealed, "c") is None
    assert settings.load().secret_key == "after"
