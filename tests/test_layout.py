"""What `make run` starts (python -m bot.layout): the checked-in Procfile by default; N Rasa servers on one tracker
store and, with REDIS_URL, one Redis lock store that Rasa 3.6 really opens."""

import os
import stat

import pytest
import yaml

from bot import layout
from bot import settings as settings_module
from bot.settings import ROOT

SETTINGS = ("ANJU_RASA_URL", "ANJU_RASA_URLS", "ANJU_RASA_REPLICAS", "ANJU_ACTIONS_URL", "REDIS_URL")


@pytest.fixture
def env(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)

    def build(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return layout.build(settings_module.load(), replicas_set="ANJU_RASA_REPLICAS" in values)

    return build


def processes(procfile: str) -> dict:
    return dict(line.split(": ", 1) for line in procfile.splitlines())


def test_the_defaults_are_the_checked_in_procfile(env):
    default = env()
    checked_in = (ROOT / "Procfile").read_text(encoding="utf-8")
    checked_in = checked_in.replace("${RASA_PORT:-5005}", "5005").replace("${ACTIONS_PORT:-5055}", "5055")
    assert default.procfile == checked_in
    assert default.endpoints is None and default.rasa_ports == (5005,) and not default.warnings


def test_replicas_on_consecutive_ports_with_a_redis_lock_store(env):
    scaled = env(ANJU_RASA_REPLICAS="3", REDIS_URL="redis://:s%40cret@10.0.0.5:6380/2")
    ps = processes(scaled.procfile)
    assert list(ps) == ["actions", "rasa-1", "rasa-2", "rasa-3", "gateway"]
    for i, port in enumerate((5005, 5006, 5007)):
        assert f"--port {port} " in ps[f"rasa-{i + 1}"] and "--endpoints run/endpoints.yml" in ps[f"rasa-{i + 1}"]
    every = "ANJU_RASA_URLS=http://127.0.0.1:5005,http://127.0.0.1:5006,http://127.0.0.1:5007"
    assert ps["gateway"].startswith(every) and every in ps["actions"]
    checked_in = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    assert scaled.endpoints["tracker_store"] == checked_in["tracker_store"]  # one store for all, as configured
    assert scaled.endpoints["lock_store"] == {
        "type": "redis",
        "url": "10.0.0.5",
        "port": 6380,
        "db": 2,
        "key_prefix": "anju",
        "password": "s@cret",
    }
    assert not scaled.warnings


def test_replicas_without_redis_keep_locks_in_memory_and_say_what_that_risks(env):
    scaled = env(ANJU_RASA_REPLICAS="2")
    assert scaled.rasa_ports == (5005, 5006) and "lock_store" not in (scaled.endpoints or {})
    assert len(scaled.warnings) == 1 and "REDIS_URL" in scaled.warnings[0]


def test_only_the_servers_on_this_machine_are_started(env):
    mixed = env(ANJU_RASA_URLS="http://127.0.0.1:7000,http://10.0.0.7:5005", REDIS_URL="redis://10.0.0.5")
    ps = processes(mixed.procfile)
    assert [name for name in ps if name.startswith("rasa")] == ["rasa"] and "--port 7000 " in ps["rasa"]
    assert "ANJU_RASA_URLS=http://127.0.0.1:7000,http://10.0.0.7:5005" in ps["gateway"]
    assert mixed.endpoints["lock_store"]["port"] == 6379 and mixed.endpoints["lock_store"]["db"] == 0


def test_the_action_servers_port_reaches_rasa(env):
    moved = env(ANJU_ACTIONS_URL="http://127.0.0.1:6055")
    assert moved.endpoints["action_endpoint"]["url"] == "http://127.0.0.1:6055/webhook"
    assert "--endpoints run/endpoints.yml" in processes(moved.procfile)["rasa"]


@pytest.mark.parametrize(
    "values, says",
    [
        ({"ANJU_RASA_REPLICAS": "3", "ANJU_RASA_URLS": "http://127.0.0.1:5005,http://127.0.0.1:5006"}, "names 2"),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "redis://"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/cache"}, "number"),
    ],
)
def test_settings_that_make_no_layout_are_refused_with_a_reason(env, values, says):
    with pytest.raises(layout.LayoutError, match=says):
        env(**values)


def test_main_writes_the_files_and_refuses_bad_settings(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANJU_RASA_REPLICAS", "2")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@127.0.0.1:6379/1")
    assert layout.main(["--out", str(tmp_path)]) == 0
    assert "2 Rasa server(s)" in capsys.readouterr().out
    written = tmp_path / "endpoints.yml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # it holds Redis's password
    assert yaml.safe_load(written.read_text())["lock_store"]["password"] == "pw"
    assert "rasa-2:" in (tmp_path / "Procfile").read_text()
    monkeypatch.setenv("ANJU_RASA_URLS", "http://127.0.0.1:5005")
    assert layout.main(["--out", str(tmp_path)]) == 2
    assert "ANJU_RASA_REPLICAS=2" in capsys.readouterr().err
    monkeypatch.delenv("ANJU_RASA_URLS")
    monkeypatch.delenv("ANJU_RASA_REPLICAS")
    monkeypatch.delenv("REDIS_URL")
    assert layout.main(["--out", str(tmp_path)]) == 0
    assert not written.exists()  # back to the checked-in endpoints.yml: no stale lock store left behind


def test_rasa_opens_the_lock_store_it_is_given(redis_url, tmp_path, monkeypatch):
    """Rasa 3.6 reads the generated endpoints.yml and locks a conversation in the Redis of REDIS_URL."""
    import asyncio

    import redis
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.core.utils import read_endpoints_from_path

    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANJU_RASA_REPLICAS", "2")
    monkeypatch.setenv("REDIS_URL", redis_url)
    layout.write(layout.build(settings_module.load()), tmp_path)
    endpoints = read_endpoints_from_path(tmp_path / "endpoints.yml")
    store = LockStore.create(endpoints.lock_store)
    assert isinstance(store, RedisLockStore)

    async def hold():
        async with store.lock("api:layout-test"):
            return redis.Redis.from_url(redis_url).keys("anju:lock:*")

    assert asyncio.run(hold()) == [b"anju:lock:api:layout-test"]
    assert os.environ["REDIS_URL"] == redis_url
