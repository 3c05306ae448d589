"""Fixtures: the tools (tests/deploy/tools.py) and charts rendered once per values file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import tools

Manifests = list[dict[str, Any]]


@pytest.fixture(scope="session")
def helm() -> str:
    return tools.helm()


@pytest.fixture(scope="session")
def checkov() -> str:
    return tools.checkov()


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def template(helm: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`helm template` of the chart with values files and --set pairs."""

    def render(*values: Path, sets: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> Any:
        args = ["template", "rel", str(tools.CHART), "--namespace", "erp"]
        args += ["--kube-version", tools.KUBERNETES_VERSION]  # the chart's kubeVersion admits it
        for v in values:
            args += ["-f", str(v)]
        for s in sets:
            args += ["--set", s]
        return run_helm(helm, *args, *extra)

    return render


@pytest.fixture(scope="session")
def rendered(template: Callable[..., Any]) -> Callable[[str], Manifests]:
    """The manifests of one values file of helm/erp/ci/ (rendered once per name)."""
    cache: dict[str, Manifests] = {}

    def get(name: str) -> Manifests:
        if name not in cache:
            got = template(tools.VALUES[name])
            assert got.returncode == 0, got.stderr
            cache[name] = [d for d in yaml.safe_load_all(got.stdout) if d]
        return cache[name]

    return get


def find(manifests: Manifests, kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[m['metadata']['name'] for m in manifests]}"
    return found[0]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    kind = manifest["kind"]
    if kind == "Pod":
        spec: dict[str, Any] = manifest["spec"]
    elif kind == "CronJob":
        spec = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = manifest["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or (secret, key) for a secretKeyRef."""
    out: dict[str, Any] = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        out[e["name"]] = (ref["name"], ref["key"]) if ref else e.get("value")
    return out
