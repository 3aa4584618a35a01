"""Benchmarks of the whole assistant in one run; writes results/bench/report.md with its figures and data.json, prints
the headline figures. Asserts nothing: a benchmark, not a test.

    make bench                 everything (about 10–15 minutes on 2 cores), on a stack started on free ports
    make bench QUICK=1         the same, shorter (about 5 minutes): one 5 s window a speed cell, 1 dialogue in 8
    make bench TRAIN=1         also times `rasa train` from an empty cache into a temporary directory (~5 min more);
                               a run with no training time measured yet (a fresh clone) times it anyway
    make bench ATTACH=1        against the stack `make run` started (start it with ANJU_RATE_LIMIT_PER_IP=0)
    python -m tools.bench --only speed,length       some sections only; the others stay as the last run left them
    python -m tools.bench --replot                  redraw the figures and the report from results/bench/data.json

The stack is whatever tools/stack.py's LocalStack starts (with ANJU_* settings from the environment, or --env): the
bench sends the REST and parse load to every Rasa server in `stack.rasa_urls`. Unless ANJU_RASA_REPLICAS is given, it
runs what a county server of this machine would: one Rasa server per core (at most 4, `default_replicas`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict

import requests

from tools.bench import dialogues, load, report, resources, understanding
from tools.stack import ROOT, LocalStack, rss_mb

OUT = ROOT / "results" / "bench"
SECTIONS = ("understanding", "import", "train", "startup", "length", "speed", "memory", "dialogues")
STACK_SECTIONS = {"startup", "length", "speed", "memory", "dialogues"}
# the load comes from one address; throttling is not what is measured (README: Throttling)
BENCH_ENV = {"ANJU_RATE_LIMIT_PER_IP": "0", "ANJU_RATE_LIMIT_BURST": "1000000"}
MEMORY_AFTER = 1000


def default_replicas() -> str:
    """One Rasa server per core, at most 4 (each holds the model: about 1.7 GB), as README's county layout advises."""
    return str(max(1, min(4, os.cpu_count() or 1)))


STARTED = time.monotonic()


def log(message: str) -> None:
    minutes, seconds = divmod(int(time.monotonic() - STARTED), 60)
    print(f"[{minutes:2d}:{seconds:02d}] {message}", flush=True)


class AttachedStack:
    """The stack `make run` started: addresses from the same settings the processes read, processes by port."""

    def __init__(self):
        from bot import sealing, settings

        s = settings.load()
        self.url = os.environ.get("ANJU_BENCH_GATEWAY", f"http://127.0.0.1:{s.gateway_port}")
        urls = os.environ.get("ANJU_RASA_URLS", "")
        self.rasa_urls = [u.strip() for u in urls.split(",") if u.strip()] or [s.rasa_url]
        self._token = sealing.rasa_token(s)
        ports = {"gateway": s.gateway_port, "actions": int(s.actions_url.rsplit(":", 1)[1].split("/")[0])}
        ports.update(
            {
                f"rasa-{i + 1}" if len(self.rasa_urls) > 1 else "rasa": int(u.rsplit(":", 1)[1].split("/")[0])
                for i, u in enumerate(self.rasa_urls)
            }
        )
        self.pids = {name: pids[0] for name, port in ports.items() if (pids := resources.listening_pids(port))}
        self.env = dict(os.environ)

    def token(self) -> str:
        return self._token

    def rss_mb(self) -> Dict[str, float]:
        return {name: rss_mb(pid) for name, pid in self.pids.items() if Path(f"/proc/{pid}").exists()}


def pids_of(stack) -> Dict[str, int]:
    if isinstance(stack, AttachedStack):
        return stack.pids
    return {name: p.pid for name, p in stack.processes.items() if p.poll() is None}


def layout(stack, attached: bool) -> Dict[str, Any]:
    secret = ("SECRET", "TOKEN", "PASSWORD", "APP_SECRET", "AES_KEY")
    env = {k: v for k, v in sorted(stack.env.items()) if k.startswith("ANJU_") and not any(s in k for s in secret)}
    env = {k: (Path(v).name if k.endswith(("_FILE", "_DIR")) else v) for k, v in env.items()}
    return {
        "attached": attached,
        "processes": sorted(pids_of(stack)),
        "rasa_servers": len(stack.rasa_urls),
        "env": env,
        "commands": {
            k: " ".join(Path(c[0]).name if i == 0 else c[i] for i in range(len(c)))
            for k, c in getattr(stack, "commands", {}).items()
        },
    }


class Counter1000:
    """Counts the messages that took the whole path (gateway or Rasa's REST channel) and snapshots every process's
    memory when the MEMORY_AFTER-th one is answered."""

    def __init__(self, stack):
        self.stack, self.count, self.snapshot = stack, 0, None

    def __call__(self, target: str) -> None:
        if target in load.PARSES:
            return
        self.count += 1
        if self.count == MEMORY_AFTER:
            self.snapshot = self.stack.rss_mb()


def first_answer(url: str, deadline: float = 120) -> float:
    """When the gateway first answered a resident (time.monotonic()): an answer, not an apology."""
    end = time.monotonic() + deadline
    outcome = "no reply"
    while time.monotonic() < end:
        try:
            r = requests.post(f"{url}/api/chat", json={"sender": "bench-cold", "message": "你好"}, timeout=30)
            outcome = load.outcome_of("gateway", r.status_code, r.json())
            if outcome == "ok":
                return time.monotonic()
        except (requests.RequestException, ValueError) as e:
            outcome = e.__class__.__name__
        time.sleep(0.2)
    raise RuntimeError(f"the gateway gave no answer in {deadline:g} s (last: {outcome}); see the stack's logs")


def check_paths(endpoints: load.Endpoints) -> None:
    """Every path, on every Rasa server, answers before anything is measured: a Rasa server without a model still
    passes its health check, and the gateway then apologises fast, which would pass for speed."""
    checks = [("gateway", 0, "bench-check")]
    for i in range(len(endpoints.rasa)):
        checks.append(("parse_all", i, "bench-check"))
        # a conversation id that the REST load would send to server i
        n = next(n for n in range(10_000) if zlib.crc32(f"bench-check-{n}".encode()) % len(endpoints.rasa) == i)
        checks.append(("rest", 0, f"bench-check-{n}"))
    for target, client, conversation in checks:
        url, payload, headers = endpoints.request(target, client, conversation, "去外省打工有交通补贴吗")
        try:
            r = requests.post(url, json=payload, headers=headers, timeout=30)
            outcome = load.outcome_of(target, r.status_code, r.json())
        except (requests.RequestException, ValueError) as e:
            outcome = e.__class__.__name__
        if outcome != "ok":
            raise RuntimeError(f"{target} ({url}) does not answer: {outcome}; see the stack's logs")


def model_snapshot(model: Path, work: Path, log=print) -> Path:
    """A copy of the model that is whole (read to its end), taken when nobody is writing it: `make train` elsewhere
    may rewrite models/anju.tar.gz during the run, and Rasa loading a half-written file serves without a model."""
    copy = work / model.name
    for _ in range(60):
        size = model.stat().st_size
        time.sleep(1)
        if model.stat().st_size == size:
            shutil.copy2(model, copy)
            try:
                with tarfile.open(copy, "r:gz") as archive:
                    for _member in archive:
                        pass
                return copy
            except (tarfile.TarError, OSError, EOFError):
                pass
        log(f"  {model} is being written; waiting …")
        time.sleep(5)
    raise RuntimeError(f"{model} did not settle into a whole archive")


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def run_stack_sections(stack, wanted: set, args, data: Dict[str, Any], stamp: Callable[[str, dict], None]) -> None:
    endpoints = load.Endpoints(stack.url, list(stack.rasa_urls), stack.token())
    check_paths(endpoints)
    counter = Counter1000(stack)
    snapshots: Dict[str, Dict[str, float]] = {"at start": stack.rss_mb()}
    stamp("stack", layout(stack, args.attach))

    log("warm-up: every message of the load parsed once, then 10 messages on each path (not measured)")
    asyncio.run(load.warm_up(endpoints, on_message=counter))

    if "length" in wanted:
        log(f"conversation length: one conversation of {args.length} messages through the gateway")
        rasa_pids = {name: pid for name, pid in pids_of(stack).items() if name.startswith("rasa")}
        profiler = resources.Profiler(rasa_pids, OUT) if not args.no_profile else None
        length = asyncio.run(load.conversation_length(endpoints, args.length, counter))
        length["profile"] = profiler.stop() if profiler else {"available": False, "skipped": True}
        log(
            f"  median first {length['window']} {length['median_first_ms']} ms, last {length['window']} "
            f"{length['median_last_ms']} ms: growth {length['growth']}x"
        )
        stamp("length", length)

    if "speed" in wanted:
        log(
            f"speed: levels {args.levels}, each path {args.rounds} × ({args.ramp:g} s ramp + {args.seconds:g} s window)"
        )
        cells = asyncio.run(
            load.speed(endpoints, args.levels, args.seconds, args.rounds, args.ramp, on_message=counter, log=log)
        )
        stamp(
            "speed",
            {"levels": args.levels, "seconds": args.seconds, "rounds": args.rounds, "ramp": args.ramp, "cells": cells},
        )

    if "memory" in wanted:
        if counter.count < MEMORY_AFTER:
            log(f"memory: {MEMORY_AFTER - counter.count} more messages through the gateway to reach {MEMORY_AFTER}")
            while counter.snapshot is None:
                asyncio.run(load.run_cell(endpoints, load.Cell("gateway", 10), 0, 5, counter))
        snapshots[f"after {MEMORY_AFTER} messages"] = counter.snapshot

    if "dialogues" in wanted:
        every = 8 if args.quick else 1
        log(f"dialogues: {'1 in 8 of ' if every > 1 else ''}the residents' conversations of tests/dialogues")
        result = dialogues.run(stack.url, OUT / "dialogues.xml", every)
        result["command"] = ".venv/bin/python -m tools.bench --only dialogues" + (" --quick" if args.quick else "")
        log("  " + result["summary"].splitlines()[0])
        stamp("dialogues", result)

    if "memory" in wanted:
        snapshots["at the end"] = stack.rss_mb()
        stamp("memory", {"snapshots": snapshots, "messages": counter.count, "after": MEMORY_AFTER})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter: 5 s a speed cell, 1 dialogue in 8")
    parser.add_argument("--train", action="store_true", help="also time rasa train (into a temporary directory)")
    parser.add_argument("--no-train", action="store_true", help="not even when no training time was measured yet")
    parser.add_argument("--only", default="", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--attach", action="store_true", help="use the running `make run` stack instead of one's own")
    parser.add_argument("--replot", action="store_true", help="only redraw figures and report from data.json")
    parser.add_argument("--levels", default="1,10,20,50", help="concurrent clients (default 1,10,20,50)")
    parser.add_argument("--seconds", type=float, default=None, help="measuring window a round (10; quick 5)")
    parser.add_argument("--rounds", type=int, default=None, help="windows per path and level (2; quick 1)")
    parser.add_argument("--ramp", type=float, default=None, help="seconds of load before each window (3; quick 2)")
    parser.add_argument("--length", type=int, default=300, help="messages in the long conversation (300)")
    parser.add_argument("--members", type=int, default=5000, help="members in the imported ledger (5000)")
    parser.add_argument("--fresh-nlu", action="store_true", help="run rasa test nlu even when results/nlu is fresh")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profile of Rasa")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the started stack")
    parser.add_argument("--model", default=str(ROOT / "models" / "anju.tar.gz"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the stack is stopped on the way out
    args.levels = [int(x) for x in args.levels.split(",")]
    for name, full, quick in (("seconds", 10.0, 5.0), ("rounds", 2, 1), ("ramp", 3.0, 2.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    OUT.mkdir(parents=True, exist_ok=True)
    data_file = OUT / "data.json"
    data: Dict[str, Any] = json.loads(data_file.read_text(encoding="utf-8")) if data_file.is_file() else {}
    data.setdefault("sections", {})

    if not args.replot:
        wanted = set(args.only.split(",")) if args.only else set(SECTIONS) - {"train"}
        # training is timed when asked, and on a whole run that has no time of its own yet (a fresh clone)
        if args.train or (not args.only and "train" not in data["sections"] and not args.no_train):
            wanted.add("train")
        unknown = wanted - set(SECTIONS)
        if unknown:
            parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
        if not args.only:  # a whole run starts afresh; only the last measured training time is kept
            data = {"sections": {k: v for k, v in data.get("sections", {}).items() if k == "train"}}
        run_id = time.strftime("%Y-%m-%d %H:%M:%S")
        command = "make bench" + (" QUICK=1" if args.quick else "") if not args.only else "python -m tools.bench"
        data["run"] = {
            "id": run_id,
            "quick": args.quick,
            "argv": sys.argv[1:],
            "command": command,
            "commit": git_commit(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        started = time.monotonic()

        def stamp(section: str, value: Dict[str, Any]) -> None:
            data["sections"][section] = {**value, "run": run_id}
            data_file.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

        model = Path(args.model)
        data["sections"]["model"] = {
            "path": str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model),
            "size_mb": round(model.stat().st_size / 2**20, 1),
            "run": run_id,
        }
        if "understanding" in wanted:
            log("understanding: held-out NLU report and the TF-IDF / BM25 baselines")
            rasa = understanding.rasa_report(model, OUT, args.fresh_nlu, log)
            base = understanding.baselines()
            log(
                f"  model macro-F1 {rasa['macro_f1']:.3f}; "
                + "; ".join(f"{m['name']} {m['macro_f1']:.3f}" for m in base["models"])
            )
            stamp("understanding", {"rasa": rasa, "baselines": base})
        if "import" in wanted:
            log(f"ledger import: {args.members} members into a fresh SQLite database, in a child process")
            figures = resources.ledger_import(args.members)
            log(f"  {figures['members']} members in {figures['seconds']} s, peak RSS {figures['peak_rss_mb']} MB")
            stamp("import", figures)
        if "train" in wanted:
            figures = resources.train(log)
            log(f"  rasa train: {figures['seconds']} s, model {figures['model_mb']} MB")
            stamp("train", figures)

        if wanted & STACK_SECTIONS:
            if args.attach:
                stack = AttachedStack()
                log(f"attached: gateway {stack.url}, Rasa {stack.rasa_urls}, processes {sorted(stack.pids)}")
                run_stack_sections(stack, wanted - {"startup"}, args, data, stamp)
            else:
                extra = dict(kv.split("=", 1) for kv in args.env)
                if "ANJU_RASA_REPLICAS" not in extra and not os.environ.get("ANJU_RASA_REPLICAS", "").strip():
                    extra["ANJU_RASA_REPLICAS"] = default_replicas()
                work = Path(tempfile.mkdtemp(prefix="anju-bench-"))
                stack = LocalStack(work, model=model_snapshot(model, work, log), env={**BENCH_ENV, **extra})
                log(f"starting the stack in {work} …")
                try:
                    stack.start()
                    answered = first_answer(stack.url)
                    cold = {
                        "seconds": round(answered - stack.spawned_at, 1),
                        "up_after": {k: round(v, 1) for k, v in stack.up_after.items()},
                    }
                    log(f"  first answer through the gateway {cold['seconds']} s after starting the processes")
                    if "startup" in wanted:
                        stamp("startup", cold)
                    run_stack_sections(stack, wanted, args, data, stamp)
                except BaseException:
                    stack.stop()
                    (work / model.name).unlink(missing_ok=True)
                    log(f"the stack's logs stay in {work}")
                    raise
                stack.stop()
                shutil.rmtree(work, ignore_errors=True)
        data["run"]["seconds"] = round(time.monotonic() - started, 1)
        data["run"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        data_file.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    profile = data["sections"].get("length", {}).get("profile") or {}
    files = [OUT / name for name in profile.get("files", [])]
    if args.replot and files and all(f.is_file() for f in files):
        profile.update(resources.summarise(files))  # the tables as resources.py draws them now
    text, headline = report.write(data, OUT)
    print(f"\n{headline}\n\nreport: {(OUT / 'report.md').relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
