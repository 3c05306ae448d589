"""The ERP app's side of a scenario: settings for a scratch database, the environment
of `erp serve`, and in-process service calls (as `erp dev` provisions its demo tenant)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.servers import ScratchDatabase
from erp.config import RateLimits, Settings
from erp.secretbox import generate_key


def settings_for(db: ScratchDatabase, redis_url: str, **changes: Any) -> Settings:
    """Production-like settings on the scratch database, as the runtime login erp_app."""
    base = Settings(
        database_url=db.app_url,
        migration_database_url=db.owner_url,
        redis_url=redis_url,
        secret_key=secrets.token_urlsafe(32),
        api_key_env="test",
        queue_prefix=f"erp-bench-{uuid.uuid4().hex[:8]}",
        # The limiter runs (its cost is part of every request) but never refuses
        # the load generator.
        rate_limits=RateLimits(*["10000000/minute"] * 4),
        # A domain stores secrets (webhook signing secrets): the API and the workers
        # refuse to start without keys.
        encryption_keys=(generate_key(),),
        # The webhook scenarios' receivers listen on this machine.
        webhook_allowed_hosts=("127.0.0.1",),
    )
    return base.replace(**changes) if changes else base


def server_env(settings: Settings) -> dict[str, str]:
    """What `erp serve` and `erp worker` read (Settings.from_env) for these settings."""
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "API_KEY_ENV": settings.api_key_env,
        "QUEUE_PREFIX": settings.queue_prefix,
        "RATE_LIMITS": settings.rate_limits.spec(),
        "LOG_LEVEL": settings.log_level,
        "LOG_JSON": "true" if settings.log_json else "false",
        "ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "WEBHOOK_ALLOWED_HOSTS": ",".join(settings.webhook_allowed_hosts),
    }


@contextmanager
def services(settings: Settings) -> Iterator[Any]:
    """`erp.extensions.db` inside an app built by `create_app` on `settings` (so every
    domain's template sections are registered), acting as system:bench; yields db."""
    from erp import create_app
    from erp.context import current_actor
    from erp.extensions import db

    app = create_app(settings.replace(log_level="WARNING", db_pool_size=2, db_max_overflow=0))
    token = current_actor.set("system:bench")
    try:
        with app.app_context():
            try:
                yield db
            finally:
                db.dispose()
    finally:
        current_actor.reset(token)


def provision(
    db: Any, slug: str, key_scopes: list[str] | None = None, template: str = "default"
) -> tuple[uuid.UUID, str]:
    """A tenant from `template` and, with `key_scopes`, an API key (else "")."""
    from erp.db import acting_in_tenant
    from erp.tenancy import services as tenancy

    def work(s: Any) -> tuple[uuid.UUID, str]:
        tenant, _created = tenancy.provision_tenant(
            s,
            tenancy.ProvisionTenant(
                slug=slug, name=f"Bench {slug}", base_currency="USD", template=template
            ),
        )
        raw = ""
        if key_scopes is not None:
            with acting_in_tenant(s, tenant.id):
                _key, raw = tenancy.create_api_key(
                    s, tenancy.CreateApiKey("bench key", key_scopes), "test", None
                )
        return tenant.id, raw

    result: tuple[uuid.UUID, str] = db.unit_of_work(work, tenant=None, role="erp_ops")
    return result


def serve_default_threads() -> int:
    """The --threads default of `erp serve`, recorded with the results."""
    from erp.cli import serve

    return int(next(p.default for p in serve.params if p.name == "threads"))
