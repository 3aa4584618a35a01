"""make lint-deploy (tools/lint_deploy.py): the deployment files in the repository pass, and a copy broken in each of
the ways it guards against fails, naming the file."""

import shutil
from pathlib import Path

import pytest

from tools import lint_deploy

ROOT = Path(__file__).resolve().parent.parent


def test_the_deployment_files_pass(capsys):
    assert lint_deploy.main([]) == 0, capsys.readouterr().out


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN = {
    # systemd: a value systemd cannot parse (it only warns and ignores it), a misspelt key, a missing program
    "restart value": ("deploy/systemd/anju-gateway.service", "Restart=on-failure", "Restart=sometimes", "restart"),
    "misspelt key": ("deploy/systemd/anju-actions.service", "ExecStart=", "ExecStrat=", "ExecStrat"),
    "missing program": ("deploy/systemd/anju-gateway.service", "/usr/bin/env ", "/usr/bin/envy ", "/usr/bin/envy"),
    "bad specifier": ("deploy/systemd/anju-rasa@.service", "--port %i", "--port %z", "specifier"),
    # what verify does not check
    "no hardening": ("deploy/systemd/anju-gateway.service", "NoNewPrivileges=yes\n", "", "NoNewPrivileges"),
    "whole disk": ("deploy/systemd/anju-rasa@.service", "ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"),
    "as root": ("deploy/systemd/anju-actions.service", "User=anju", "User=root", "root"),
    "no restart": ("deploy/systemd/anju-gateway.service", "Restart=on-failure\n", "", "Restart=on-failure"),
    "unknown unit": ("deploy/systemd/anju.target", "anju-setup.service", "anju-set-up.service", "anju-set-up"),
    # Kubernetes: an unknown field, a wrong type, an unknown kind, Rasa's URLs out of step with its pods
    "unknown field": ("deploy/k8s/gateway.yaml", "  replicas: 2", "  replica: 2", "replica"),
    "wrong type": ("deploy/k8s/gateway.yaml", "containerPort: 8080", 'containerPort: "8080"', "containerPort"),
    "unknown kind": ("deploy/k8s/actions.yaml", "kind: Deployment", "kind: Deploymnt", "Deploymnt"),
    "no probe": ("deploy/k8s/actions.yaml", "          readinessProbe:", "          startupProbe:", "readinessProbe"),
    "rasa urls": ("deploy/k8s/rasa.yaml", "replicas: 3", "replicas: 4", "ANJU_RASA_URLS"),
    # settings names, and the Dockerfile
    "misspelt setting": ("deploy/anju.env.example", "REDIS_URL=", "REDIS_URI=", "REDIS_URI"),
    "configmap setting": ("deploy/k8s/settings.yaml", "ANJU_ACTIONS_URL:", "ANJU_ACTION_URL:", "ANJU_ACTION_URL"),
    "untagged image": ("Dockerfile", "FROM python:3.10-slim AS base", "FROM python AS base", "DL3006"),
    "pip cache": ("Dockerfile", "pip install --no-cache-dir", "pip install", "DL3042"),
}


@pytest.mark.parametrize("path, old, new, named", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_copy_fails(copy, capsys, path, old, new, named):
    _edit(copy / path, old, new)
    assert lint_deploy.main(["--root", str(copy)]) == 1
    out = capsys.readouterr().out
    assert named in out, out
    # the problem is this file's: the other files still pass
    assert all(Path(path).name in line or "hadolint" in line or "systemd-analyze" in line for line in out.splitlines())


def test_a_missing_unit_fails(copy, capsys):
    (copy / "deploy/systemd/anju-conversations-prune.timer").unlink()
    assert lint_deploy.main(["--root", str(copy)]) == 1
    assert "anju-conversations-prune.timer: missing" in capsys.readouterr().out
