"""Resources: ledger import time and peak memory (in a child process of its own), `rasa train` time into a temporary
directory, model size, and a py-spy profile of the Rasa server while it works."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

from tools.stack import ROOT, VENV_BIN

QUIET = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}


def ledger_import(members: int) -> Dict[str, Any]:
    """`python -m tools.bench.ledger_import` in a child: its figures, as JSON on its last line."""
    command = [sys.executable, "-m", "tools.bench.ledger_import", "--members", str(members)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **QUIET}, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["command"] = f".venv/bin/python -m tools.bench.ledger_import --members {members}"
    return figures


def train(log=print) -> Dict[str, Any]:
    """`rasa train` from scratch (an empty cache) into a temporary directory: never over models/anju.tar.gz."""
    with tempfile.TemporaryDirectory(prefix="anju-bench-train-") as tmp:
        command = [
            str(VENV_BIN / "rasa"), "train", "--skip-validation", "--fixed-model-name", "bench", "--out", tmp,
        ]  # fmt: skip
        env = {**os.environ, **QUIET, "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        log(f"  rasa train into {tmp} (empty cache) …")
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        size = (Path(tmp) / "bench.tar.gz").stat().st_size
    return {
        "seconds": round(seconds, 1),
        "model_mb": round(size / 2**20, 1),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "command": ".venv/bin/python -m tools.bench --only train --train",
    }


class Profiler:
    """py-spy record of some processes (raw collapsed stacks) until stop(); a no-op when py-spy is missing."""

    def __init__(self, pids: Dict[str, int], out_dir: Path, rate: int = 100):
        self.tool = VENV_BIN / "py-spy"
        self.files = {name: out_dir / f"profile-{name}.txt" for name in pids}
        self.processes: List[subprocess.Popen] = []
        self.available = self.tool.exists()
        if not self.available:
            return
        for name, pid in pids.items():
            command = [
                str(self.tool), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                "--output", str(self.files[name]), "--nonblocking",
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(out_dir / f"py-spy-{name}.log").open("w"))
            )
        time.sleep(1)  # attached before the first message

    def stop(self) -> Dict[str, Any]:
        if not self.available:
            return {"available": False}
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        found = {name: path for name, path in self.files.items() if path.is_file() and path.stat().st_size}
        if not found:
            return {"available": True, "error": "py-spy wrote no profile (see results/bench/py-spy-*.log)"}
        return {"available": True, **summarise(list(found.values())), "files": [str(p.name) for p in found.values()]}


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# the frames every request sits under (the CLI, the Sanic server, the event loop, thread pools, the graph runner's
# dask scheduler): left out of the tables, so they show where the time goes inside a request
PLUMBING = ("sanic/", "rasa/cli/", "rasa/__main__.py", "rasa/api.py", "rasa/core/run.py", "asyncio/", "threading.py",
            "concurrent/futures/", "dask/")  # fmt: skip


def _frame(frame: str) -> str | None:
    """`function (path)` with the path shortened; None for plumbing and for frames without a Python file."""
    match = FRAME.match(frame.strip())
    if not match:
        return None
    path = match["file"]
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3.10/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if not path.endswith(".py") or path.startswith(PLUMBING):
        return None
    return f"{match['function']} ({path})"


def summarise(files: List[Path], top: int = 20) -> Dict[str, Any]:
    """From py-spy's collapsed stacks: the functions on the most samples (inclusive) and at the top of the stack
    (self), each as a share of all samples; samples with no frame below the plumbing are the event loop itself."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = loop = 0
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [f for f in map(_frame, stack.split(";")) if f]
            if not frames:
                loop += n
                continue
            own[frames[-1]] += n
            for name in set(frames):
                inclusive[name] += n
    share = lambda c: [(name, round(n / total, 4)) for name, n in c.most_common(top)] if total else []  # noqa: E731
    return {
        "samples": total,
        "event_loop": round(loop / total, 4) if total else 0.0,
        "inclusive": share(inclusive),
        "self": share(own),
    }


def listening_pids(port: int) -> List[int]:
    """Processes (of any user we may read) listening on a TCP port of this machine, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    sockets = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
