"""The chart's pgbouncer.ini, run by a real pgbouncer in front of the test database:
erp_app connects through it with the settings the chart renders (transaction pooling,
DB_PREPARE_THRESHOLD=none) and a tenant pin does not outlive its transaction."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml

from erp.config import Settings
from tests import servers
from tests.deploy import tools
from tests.deploy.conftest import find
from tests.rls.test_pgbouncer import _as_unprivileged, _binary, _free_port, _wait_ready


def _run_as(workdir: Path, host: str) -> list[str]:
    """pgbouncer refuses root: as root, run it as the owner of the embedded server's
    socket directory (only it may connect there), else as postgres."""
    if os.geteuid() != 0 or not host.startswith("/"):
        return _as_unprivileged(workdir)
    owner = Path(host).stat()
    for path in (workdir, *workdir.iterdir()):
        os.chown(path, owner.st_uid, owner.st_gid)
    return ["-u", pwd.getpwuid(owner.st_uid).pw_name]


@pytest.fixture(scope="module")
def chart_bouncer(
    template: Callable[..., Any], app_url: str, db_name: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """(erp_app's URL through the chart's pgbouncer, the chart's ConfigMap data)."""
    binary = _binary()
    server = urlsplit(app_url)
    # TCP, or the embedded server's socket directory (pgbouncer reads host=/dir as one)
    host = server.hostname or parse_qs(server.query).get("host", ["127.0.0.1"])[0]
    port = _free_port()
    got = template(
        tools.VALUES["production"],
        sets=(
            f"pgbouncer.upstream.host={host}",
            f"pgbouncer.upstream.port={server.port or 5432}",
            f"pgbouncer.port={port}",
            "pgbouncer.serverTlsSslmode=prefer",
        ),
    )
    assert got.returncode == 0, got.stderr
    manifests = [d for d in yaml.safe_load_all(got.stdout) if d]
    ini = find(manifests, "ConfigMap", "erp-pgbouncer")["data"]["pgbouncer.ini"]
    config = find(manifests, "ConfigMap", "erp")["data"]

    workdir = Path(tempfile.mkdtemp(prefix="chart-pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "userlist.txt").write_text(f'"erp_app" "{servers.APP_PASSWORD}"\n')
    # Only what differs on a test machine: loopback, the file paths, a log file.
    ini = ini.replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
    ini = ini.replace("/etc/pgbouncer/secret/userlist.txt", str(workdir / "userlist.txt"))
    ini += f"logfile = {workdir}/pgbouncer.log\n"
    (workdir / "pgbouncer.ini").write_text(ini)
    cmd = [binary, *_run_as(workdir, host), str(workdir / "pgbouncer.ini")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"postgresql://erp_app:{servers.APP_PASSWORD}@127.0.0.1:{port}/{db_name}"
    try:
        _wait_ready(proc, url, workdir / "pgbouncer.log")
        yield url, config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_chart_pgbouncer_pools_per_transaction(
    chart_bouncer: tuple[str, dict[str, str]],
) -> None:
    url, config = chart_bouncer
    settings = Settings.from_env({**config, "DATABASE_URL": url})
    assert settings.db_prepare_threshold is None  # the chart turned prepares off
    with (
        psycopg.connect(url, prepare_threshold=settings.db_prepare_threshold, autocommit=True) as a,
        psycopg.connect(url, prepare_threshold=settings.db_prepare_threshold, autocommit=True) as b,
    ):
        assert a.execute("SELECT current_user").fetchone() == ("erp_app",)
        with a.transaction():
            a.execute("SELECT set_config('app.tenant_id', gen_random_uuid()::text, true)")
            pinned = a.execute("SELECT current_setting('app.tenant_id')").fetchone()
            assert pinned is not None
            assert pinned[0]
        # the next transaction, on whichever server connection, has no tenant
        for conn in (a, b):
            row = conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()
            assert row is not None
            assert row[0] in (None, "")
        # the same query many times: no server-side prepared statement to lose
        for _ in range(10):
            assert b.execute("SELECT 1 WHERE %s = %s", (1, 1)).fetchone() == (1,)
