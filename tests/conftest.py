"""Fixtures: a migrated database per xdist worker, the app as erp_app, tenants and keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, pool

from erp import create_app
from erp.config import RateLimits, Settings, sqlalchemy_url
from erp.extensions import db, queue
from erp.http import ErpFlask
from tests import servers


@pytest.fixture(scope="session")
def worker_id_str(request: pytest.FixtureRequest) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def server_url() -> str:
    return servers.database_url()


@pytest.fixture(scope="session")
def db_name(worker_id_str: str) -> str:
    """Unique per test run and worker, so concurrent runs never share a database."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:10]
    return f"erp_test_{run}_{worker_id_str}"


@pytest.fixture(scope="session")
def owner_url(server_url: str, db_name: str) -> Iterator[str]:
    """Superuser URL of this worker's freshly migrated database (dropped afterwards)."""
    from erp.migrate import upgrade

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = servers.with_database(server_url, db_name)
    upgrade(url, "head", app_password=servers.APP_PASSWORD)
    yield url
    from erp.extensions import db

    db.dispose()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app_url(owner_url: str, db_name: str) -> str:
    """The runtime login (erp_app) on the same database."""
    return servers.with_database(owner_url, db_name, "erp_app", servers.APP_PASSWORD)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield servers.redis_url()
    servers.stop_redis()


#: A fixed Fernet key of the test settings (tests of rotation add their own in front).
TEST_ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyEhISE="


@pytest.fixture(scope="session")
def settings(app_url: str, redis_url: str, owner_url: str, worker_id_str: str) -> Settings:
    return Settings(
        database_url=app_url,
        migration_database_url=owner_url,
        redis_url=redis_url,
        secret_key="test-secret-key",
        encryption_keys=(TEST_ENCRYPTION_KEY,),
        # Webhook tests deliver to receivers on this machine (API.md, Webhooks).
        webhook_allowed_hosts=("127.0.0.1",),
        queue_prefix=f"erp-test-{worker_id_str}-{uuid.uuid4().hex[:6]}",
        log_json=True,
        log_level="WARNING",
        # Few idle connections per xdist worker (the server allows 100 in all);
        # overflow covers the 16-thread concurrency tests and is closed after use.
        db_pool_size=4,
        db_max_overflow=20,
        # Every request goes through the limiter, but no test is slowed into a 429;
        # tests/core/test_ratelimit.py makes apps with small limits.
        rate_limits=RateLimits(*["100000/minute"] * 3),
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> ErpFlask:
    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def client(app: ErpFlask) -> Any:
    return app.test_client()


@pytest.fixture(scope="session")
def owner_engine(owner_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(owner_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app_engine(app_url: str) -> Iterator[Engine]:
    """Raw erp_app connections, for attacks that bypass the app's hooks."""
    engine = create_engine(sqlalchemy_url(app_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def operator_token(owner_url: str, app: ErpFlask) -> str:
    from erp.tenancy.purge import create_operator_as_owner

    return create_operator_as_owner(owner_url, f"ops-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture(scope="session")
def ops_headers(operator_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token}"}


@dataclass
class TenantHandle:
    id: uuid.UUID
    slug: str
    key: str
    key_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


ALL_SCOPES = sorted(__import__("erp.scopes", fromlist=["ALL_SCOPES"]).ALL_SCOPES)


def make_tenant(
    client: Any,
    ops_headers: dict[str, str],
    scopes: list[str] | None = None,
    currency: str = "USD",
    template: str = "default",
) -> TenantHandle:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    r = client.post(
        "/ops/v1/tenants",
        json={
            "slug": slug,
            "name": f"Tenant {slug}",
            "base_currency": currency,
            "template": template,
        },
        headers=ops_headers,
    )
    assert r.status_code == 201, r.get_json()
    tid = uuid.UUID(r.get_json()["id"])
    r = client.post(
        f"/ops/v1/tenants/{tid}/api-keys",
        json={"name": "test key", "scopes": scopes or ALL_SCOPES},
        headers=ops_headers,
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    return TenantHandle(tid, slug, body["key"], uuid.UUID(body["id"]))


@pytest.fixture
def tenant(client: Any, ops_headers: dict[str, str]) -> TenantHandle:
    return make_tenant(client, ops_headers)


@pytest.fixture
def other_tenant(client: Any, ops_headers: dict[str, str]) -> TenantHandle:
    return make_tenant(client, ops_headers)


AppFactory = Callable[..., ErpFlask]


@pytest.fixture
def make_app(app: ErpFlask, settings: Settings) -> Iterator[AppFactory]:
    """`make_app(**setting_changes)`: a separate app; the session `app` stays untouched."""
    made: list[ErpFlask] = []

    def factory(**changes: Any) -> ErpFlask:
        new = create_app(settings.replace(**changes) if changes else settings)
        new.config["TESTING"] = True
        made.append(new)
        return new

    yield factory
    for extra in made:
        with extra.app_context():
            db.dispose()
            queue.redis.close()
