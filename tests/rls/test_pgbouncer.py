"""Through pgbouncer in transaction pooling mode, tenants still never meet.

Our own pgbouncer (free port, config in a temporary directory, one server
connection per pool) multiplexes every client onto one server session, so any
tenant setting that outlived its transaction would show up in the next
client's. psycopg runs with `prepare_threshold=None` (no server-side prepared
statements, which transaction pooling cannot carry).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp.config import Settings
from erp.db import Database, sqlstate
from tests import servers
from tests.rls.conftest import Seeded

ROUNDS = 100
CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer")


def _binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in CANDIDATES if os.path.exists(p)), None)
    if found is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must provide it (.ci/run installs it)")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Bouncer:
    url: str  # erp_app through pgbouncer

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, prepare_threshold=None, **kwargs)


def _config(workdir: Path, port: int, server: Any, db_name: str) -> Path:
    (workdir / "userlist.txt").write_text(f'"erp_app" "{servers.APP_PASSWORD}"\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{db_name} = host={server.hostname or "127.0.0.1"} port={server.port or 5432} dbname={db_name}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = md5
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 50
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {workdir}/pgbouncer.log
"""
    )
    return ini


def _as_unprivileged(workdir: Path) -> list[str]:
    """pgbouncer refuses to run as root: as root, drop to the postgres user with -u."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("postgres")
    for path in (workdir, *workdir.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    return ["-u", "postgres"]


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with psycopg.connect(url, prepare_threshold=None, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    detail = log.read_text() if log.exists() else "(no log)"
    pytest.fail(f"pgbouncer did not come up (exit {proc.poll()}):\n{detail}")


@pytest.fixture(scope="module")
def bouncer(app_url: str, db_name: str) -> Iterator[Bouncer]:
    binary = _binary()
    workdir = Path(tempfile.mkdtemp(prefix="rls-pgbouncer-"))
    workdir.chmod(0o755)
    port = _free_port()
    ini = _config(workdir, port, urlsplit(app_url), db_name)
    cmd = [binary, *_as_unprivileged(workdir), str(ini)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"postgresql://erp_app:{servers.APP_PASSWORD}@127.0.0.1:{port}/{db_name}"
    try:
        _wait_ready(proc, url, workdir / "pgbouncer.log")
        yield Bouncer(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _key_ids(owner_engine: Engine, tenant: uuid.UUID) -> set[uuid.UUID]:
    with owner_engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT id FROM iam.api_keys WHERE tenant_id = :t"), {"t": tenant}
            ).scalars()
        )


def _tenant_read(
    conn: psycopg.Connection[Any], tenant: uuid.UUID
) -> tuple[set[Any], set[Any], int]:
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant)])
        rows = conn.execute("SELECT tenant_id, id FROM iam.api_keys").fetchall()
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert pid is not None
    return {r[0] for r in rows}, {r[1] for r in rows}, pid[0]


def _outside(conn: psycopg.Connection[Any]) -> tuple[Any, int]:
    guc = conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()
    count = conn.execute("SELECT count(*) FROM iam.api_keys").fetchone()
    assert guc is not None
    assert count is not None
    return guc[0], count[0]


def test_alternating_clients_share_one_server_session_and_never_leak(
    bouncer: Bouncer, seeded: Seeded, owner_engine: Engine
) -> None:
    a, b = seeded.a, seeded.b
    expected = {a.id: _key_ids(owner_engine, a.id), b.id: _key_ids(owner_engine, b.id)}
    pids = set()
    with (
        bouncer.connect() as for_a,
        bouncer.connect() as for_b,
        bouncer.connect(autocommit=True) as loose,
    ):
        for i in range(ROUNDS):
            tenant, conn = (a.id, for_a) if i % 2 == 0 else (b.id, for_b)
            tenants, keys, pid = _tenant_read(conn, tenant)
            pids.add(pid)
            assert tenants == {tenant}, f"round {i}: saw {tenants}"
            assert keys == expected[tenant], f"round {i}"
            if i % 10 == 0:  # a statement outside any transaction, on the same server session
                guc, count = _outside(loose)
                assert guc in (None, ""), f"round {i}: {guc!r} outlived its transaction"
                assert count == 0
    assert len(pids) == 1, "default_pool_size=1: every client ran on one server session"


def test_a_session_level_setting_would_leak_so_the_harness_can_see_leaks(
    bouncer: Bouncer, seeded: Seeded, settings: Settings
) -> None:
    """Why the GUC must be transaction-local: a session-level one crosses clients here.

    The app's own transactions are immune even then: each pins its tenant (or '')
    as its first statement, over whatever the server session carries.
    """
    database = _bounced_database(bouncer, settings)
    with bouncer.connect(autocommit=True) as careless, bouncer.connect(autocommit=True) as other:
        try:
            careless.execute("SELECT set_config('app.tenant_id', %s, false)", [str(seeded.a.id)])
            guc, count = _outside(other)
            assert guc == str(seeded.a.id)
            assert count > 0
            assert database.unit_of_work(_observe, tenant=None) == (set(), set())
            assert database.unit_of_work(_observe, tenant=seeded.b.id)[0] == {seeded.b.id}
        finally:
            careless.execute("RESET app.tenant_id")
            database.dispose()
        assert _outside(other)[1] == 0


def _bounced_database(bouncer: Bouncer, settings: Settings) -> Database:
    """The app's Database (its tenant hook, its engine options) through pgbouncer."""
    database = Database()
    database.configure(
        settings.replace(database_url=bouncer.url, db_prepare_threshold=None),
        pool_size=2,
        max_overflow=0,
    )
    return database


def _observe(s: Session) -> tuple[set[Any], set[Any]]:
    rows = s.execute(text("SELECT tenant_id, id FROM iam.api_keys")).all()
    return {r[0] for r in rows}, {r[1] for r in rows}


def test_the_apps_sessions_through_pgbouncer_concurrently(
    bouncer: Bouncer, seeded: Seeded, settings: Settings, owner_engine: Engine
) -> None:
    """Two threads, two tenants, the app's own Database (its tenant hook) over one session."""
    database = _bounced_database(bouncer, settings)
    errors: list[str] = []
    done: list[uuid.UUID] = []

    def work(tenant: uuid.UUID) -> None:
        expected = _key_ids(owner_engine, tenant)
        try:
            for i in range(ROUNDS // 2):
                tenants, keys = database.unit_of_work(_observe, tenant=tenant)
                if tenants != {tenant} or keys != expected:
                    errors.append(f"{tenant} round {i}: saw {tenants}")
                empty = database.unit_of_work(_observe, tenant=None)
                if empty != (set(), set()):
                    errors.append(f"no tenant, round {i}: saw {empty[0]}")
            done.append(tenant)
        except Exception as exc:  # reported to the main thread
            errors.append(f"{tenant}: {exc!r}")

    threads = [threading.Thread(target=work, args=(t.id,)) for t in (seeded.a, seeded.b)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        database.dispose()
    assert not errors, "\n".join(errors[:20])
    assert sorted(done) == sorted([seeded.a.id, seeded.b.id])


# -- timeouts: held per transaction, whatever the shared server session carries -------

TIMEOUTS = {
    "statement_timeout": "4321ms",
    "lock_timeout": "1234ms",
    "idle_in_transaction_session_timeout": "5678ms",
}


def _timeouts(s: Session) -> dict[str, str]:
    return {name: s.execute(text(f"SHOW {name}")).scalar_one() for name in TIMEOUTS}


def test_the_configured_timeouts_hold_in_every_app_transaction(
    bouncer: Bouncer, seeded: Seeded, settings: Settings
) -> None:
    """Another client's session-level SET reaches our server session; the pin wins over it."""
    database = _bounced_database(
        bouncer,
        settings.replace(
            db_statement_timeout_ms=4321,
            db_lock_timeout_ms=1234,
            db_idle_in_transaction_timeout_ms=5678,
        ),
    )
    with bouncer.connect(autocommit=True) as careless:
        try:
            for name in TIMEOUTS:
                careless.execute(f"SET {name} = 0")  # session-level: leaks to the next client
            assert _show(bouncer, "lock_timeout") == "0", "the harness must see the leak"
            for tenant, role in ((seeded.a.id, None), (None, None), (None, "erp_ops")):
                got = database.unit_of_work(_timeouts, tenant=tenant, role=role)
                assert got == TIMEOUTS, (tenant, role)
        finally:
            careless.execute("RESET ALL")
            database.dispose()


def _show(bouncer: Bouncer, name: str) -> str:
    with bouncer.connect(autocommit=True) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def test_erp_app_logins_start_with_the_role_defaults_erp_migrate_set(
    bouncer: Bouncer, app_url: str
) -> None:
    """Outside any app transaction (psql as erp_app, autocommit), direct or bounced."""
    defaults = {"statement_timeout": "30s", "lock_timeout": "10s"}
    defaults["idle_in_transaction_session_timeout"] = "1min"
    for name, value in defaults.items():
        assert _show(bouncer, name) == value
        with psycopg.connect(app_url, autocommit=True) as direct:
            assert direct.execute(f"SHOW {name}").fetchone() == (value,)


def test_a_statement_over_the_timeout_is_cancelled_and_the_api_says_503(
    bouncer: Bouncer, seeded: Seeded, settings: Settings
) -> None:
    from erp import create_app
    from erp.extensions import db, queue

    quick = settings.replace(
        database_url=bouncer.url, db_prepare_threshold=None, db_statement_timeout_ms=200
    )
    database = _bounced_database(bouncer, quick)
    started = time.monotonic()
    try:
        with pytest.raises(DBAPIError) as caught:
            database.unit_of_work(lambda s: s.execute(text("SELECT pg_sleep(5)")), tenant=None)
    finally:
        database.dispose()
    assert sqlstate(caught.value) == "57014"  # query_canceled
    assert time.monotonic() - started < 4

    app = create_app(quick.replace(db_pool_size=1, db_max_overflow=0))

    @app.get("/test/slow")
    def slow() -> Any:
        db.session.execute(text("SELECT pg_sleep(5)"))
        return {}

    try:
        r = app.test_client().get("/test/slow")
        assert r.status_code == 503, r.get_data(as_text=True)
        assert r.mimetype == "application/problem+json"
        assert r.get_json()["type"].endswith("/unavailable")
        assert r.headers["Retry-After"]
    finally:
        with app.app_context():
            db.dispose()
            queue.redis.close()
