"""The Makefile's targets beyond `make run` / `make test` do what README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def _make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`make TARGET` with this interpreter's venv, never reinstalling it (-o: the stamp is old)."""
    venv = Path(sys.prefix)
    return subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed-dev", f"VENV={venv}", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_migrate_upgrades_the_database_of_migration_database_url(owner_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATION_DATABASE_URL"}
    missing = _make("migrate", env)
    assert missing.returncode != 0
    assert "MIGRATION_DATABASE_URL is not set" in missing.stderr

    done = _make("migrate", {**env, "MIGRATION_DATABASE_URL": owner_url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrated to head" in done.stdout
    with psycopg.connect(owner_url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version is not None
    heads = sorted(p.name.split("_")[0] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert version[0].startswith(heads[-1]), (version, heads)
