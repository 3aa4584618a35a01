"""What `make run` starts, from the settings: `python -m bot.layout` writes run/Procfile (and run/endpoints.yml when
endpoints.yml alone does not fit) and says what it wrote. README: Scaling.

The checked-in Procfile is the template: with the defaults its commands are run unchanged (one action server, one
Rasa server, the gateway, endpoints.yml). With ANJU_RASA_REPLICAS=N (or ANJU_RASA_URLS) it starts a Rasa server for
each of ANJU_RASA_URLS on this machine's loopback, on that URL's port (5005, 5006, … by default), all on the same
tracker store (endpoints.yml's, ANJU_TRACKER_URL) and, when REDIS_URL is set, the same Redis lock store; the gateway
and the action server are told every URL.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple
from urllib.parse import unquote, urlsplit

import yaml

from bot import settings as settings_module
from bot.settings import ROOT

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ENDPOINTS = ROOT / "endpoints.yml"
# Rasa's RedisLockStore keys get this prefix (alphanumeric, Rasa's rule): the same Redis may hold the gateway's keys
LOCK_KEY_PREFIX = "anju"
PROCFILE = ROOT / "Procfile"
# what the checked-in Procfile leaves to `make run`'s RASA_PORT and ACTIONS_PORT, and how it names Rasa's address
RASA_PORT = re.compile(r"\$\{RASA_PORT:-\d+\}")
ACTIONS_PORT = re.compile(r"\$\{ACTIONS_PORT:-\d+\}")
RASA_URL = re.compile(r"ANJU_RASA_URL=\S+")


class LayoutError(ValueError):
    """Settings that do not make a layout; the message says what to change."""


@dataclass(frozen=True)
class Layout:
    procfile: str
    endpoints: Dict[str, Any] | None  # None: Rasa reads the checked-in endpoints.yml
    rasa_ports: Tuple[int, ...]  # the Rasa servers started here
    warnings: Tuple[str, ...] = ()


def redis_lock_store(redis_url: str) -> Dict[str, Any]:
    """endpoints.yml's lock_store for Rasa 3.6's RedisLockStore (rasa/core/lock_store.py: url is the host; port, db,
    username, password, use_ssl, key_prefix) from a redis:// or rediss:// URL."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise LayoutError(f"REDIS_URL must look like redis://[:password@]host[:port][/db], not {parts.scheme}://…")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise LayoutError(f"REDIS_URL's database must be a number (redis://host:6379/0), not {db!r}")
    store: Dict[str, Any] = {
        "type": "redis",
        "url": parts.hostname,
        "port": parts.port or 6379,
        "db": int(db),
        "key_prefix": LOCK_KEY_PREFIX,
    }
    if parts.username:
        store["username"] = unquote(parts.username)
    if parts.password:
        store["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        store["use_ssl"] = True
    return store


def _local_port(url: str) -> int | None:
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)


def endpoints_config(actions_url: str, redis_url: str = "") -> Dict[str, Any]:
    """endpoints.yml as it is checked in, with the action server at `actions_url` and, with a REDIS_URL, the Redis
    lock store."""
    endpoints = yaml.safe_load(ENDPOINTS.read_text(encoding="utf-8"))
    endpoints["action_endpoint"]["url"] = f"{actions_url.rstrip('/')}/webhook"
    if redis_url:
        endpoints["lock_store"] = redis_lock_store(redis_url)
    return endpoints


def procfile_template() -> Dict[str, str]:
    """The checked-in Procfile: process name -> command."""
    lines = [line for line in PROCFILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return dict(line.split(":", 1) for line in lines if not line.lstrip().startswith("#"))


def build(s: settings_module.Settings, replicas_set: bool = False, endpoints_file: str = "run/endpoints.yml") -> Layout:
    """The layout for these settings: the checked-in Procfile with this layout's ports and addresses, its `rasa`
    line once for each Rasa server on this machine, reading `endpoints_file` when endpoints.yml does not fit.
    `replicas_set`: ANJU_RASA_REPLICAS was given (then it must agree with a list given in ANJU_RASA_URLS)."""
    urls = s.rasa_urls
    if replicas_set and s.rasa_urls_listed and s.rasa_replicas != len(urls):
        raise LayoutError(
            f"ANJU_RASA_REPLICAS={s.rasa_replicas} but ANJU_RASA_URLS names {len(urls)} Rasa server(s): "
            "set one of them (ANJU_RASA_URLS names every server, on this machine and others)"
        )
    ports = tuple(port for url in urls if (port := _local_port(url)) is not None)
    actions_url = s.actions_url.rstrip("/")
    endpoints = endpoints_config(actions_url, s.redis_url)
    changed = endpoints != yaml.safe_load(ENDPOINTS.read_text(encoding="utf-8"))
    warnings: List[str] = []
    if len(urls) > 1 and not s.redis_url:
        warnings.append(
            f"{len(urls)} Rasa servers without REDIS_URL: each keeps its conversation locks in memory. The gateway "
            "keeps every conversation on one server, so this holds except while a conversation moves (its server "
            "went down or came back): two messages of it sent at that moment could be answered by two servers at "
            "once. Set REDIS_URL for a shared lock store."
        )
    # the gateway and the action server get the list whenever there is one; alone, the one URL as before
    if len(urls) > 1 or s.rasa_urls_listed:
        rasa_env = f"ANJU_RASA_URLS={','.join(urls)}"
    else:
        rasa_env = f"ANJU_RASA_URL={urls[0]}"
    actions_port = str(urlsplit(actions_url).port or 80)

    def fill(command: str, rasa_port: int | None = None) -> str:
        command = ACTIONS_PORT.sub(actions_port, command)
        command = RASA_URL.sub(rasa_env, command)
        if rasa_port is not None:
            command = RASA_PORT.sub(str(rasa_port), command)
        if changed:
            command = command.replace("--endpoints endpoints.yml", f"--endpoints {endpoints_file}")
        return command

    lines = []
    for name, command in procfile_template().items():
        if name != "rasa":
            lines.append(f"{name}:{fill(command)}")
            continue
        for i, port in enumerate(ports):
            lines.append(f"{name if len(ports) == 1 else f'rasa-{i + 1}'}:{fill(command, port)}")
    return Layout("\n".join(lines) + "\n", endpoints if changed else None, ports, tuple(warnings))


def write(layout: Layout, out: Path) -> List[Path]:
    """run/Procfile, and run/endpoints.yml when the layout has its own (0600: it may hold Redis's password)."""
    out.mkdir(parents=True, exist_ok=True)
    procfile = out / "Procfile"
    procfile.write_text(layout.procfile, encoding="utf-8")
    written = [procfile]
    endpoints = out / "endpoints.yml"
    if layout.endpoints is None:
        endpoints.unlink(missing_ok=True)
        return written
    text = "# Written by `python -m bot.layout` (make run) from endpoints.yml and the settings: edit those instead.\n"
    text += yaml.safe_dump(layout.endpoints, allow_unicode=True, sort_keys=False)
    fd = os.open(endpoints, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(endpoints, 0o600)
    return [*written, endpoints]


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "run", help="where to write Procfile (default: run/)")
    args = parser.parse_args(argv)
    s = settings_module.load()
    try:
        endpoints_file = args.out.resolve() / "endpoints.yml"  # relative to the repository, where make run runs
        endpoints_file = endpoints_file.relative_to(ROOT) if endpoints_file.is_relative_to(ROOT) else endpoints_file
        layout = build(s, bool(os.environ.get("ANJU_RASA_REPLICAS", "").strip()), str(endpoints_file))
    except LayoutError as e:
        print(f"make run: {e}", file=sys.stderr)
        return 2
    write(layout, args.out)
    for warning in layout.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    servers = ", ".join(str(p) for p in layout.rasa_ports) or "none on this machine"
    locks = "Redis lock store" if s.redis_url else "locks in memory"
    print(f"Layout: {len(layout.rasa_ports)} Rasa server(s) here (ports {servers}), {locks}; {args.out / 'Procfile'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
