"""Typed settings, read from the environment once, when the app or a CLI command starts."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


#: Rate-limit scopes: a key's own requests, all keys of one tenant, one operator token.
RATE_LIMIT_SCOPES = ("key", "tenant", "operator")


@dataclass(frozen=True)
class RateLimits:
    """Flask-Limiter limit strings per scope (e.g. "600/minute"); None: that scope is off."""

    key: str | None = "1200/minute"
    tenant: str | None = "6000/minute"
    operator: str | None = "1200/minute"

    @classmethod
    def parse(cls, raw: str, name: str = "RATE_LIMITS") -> RateLimits:
        """`key=600/minute;tenant=3000/minute;operator=off`: unnamed scopes keep their
        defaults; `off` turns a scope off, a bare `off` all of them; several limits of
        one scope are comma-separated (`key=20/second,600/minute`)."""
        from limits import parse_many

        raw = raw.strip()
        if raw.lower() == "off":
            return cls(key=None, tenant=None, operator=None)
        values: dict[str, str | None] = {}
        for part in filter(None, (p.strip() for p in raw.split(";"))):
            scope, eq, value = (s.strip() for s in part.partition("="))
            if not eq or scope not in RATE_LIMIT_SCOPES:
                raise ValueError(
                    f"{name}: {part!r} is not <scope>=<limit> with scope one of "
                    + ", ".join(RATE_LIMIT_SCOPES)
                )
            if scope in values:
                raise ValueError(f"{name}: the scope {scope} is named twice")
            if value.lower() == "off":
                values[scope] = None
                continue
            try:
                items = parse_many(value)
            except ValueError:
                items = []
            if not items or any(item.amount < 1 for item in items):
                raise ValueError(f"{name}: {value!r} is not a limit such as 600/minute")
            values[scope] = value
        return cls(**values)

    def spec(self) -> str:
        """The `RATE_LIMITS` value that reads back as these limits."""
        return ";".join(f"{s}={getattr(self, s) or 'off'}" for s in RATE_LIMIT_SCOPES)


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and make SQLAlchemy use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://erp_app@127.0.0.1:5432/erp"
    migration_database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    api_key_env: str = "live"
    problem_base_uri: str = "/problems/"
    max_content_length: int = 1024 * 1024
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: int = 10
    #: A round trip per checkout; off by default, connections are recycled instead.
    db_pool_pre_ping: bool = False
    db_pool_recycle: int = 1800
    # None disables server-side prepared statements (pgbouncer in transaction mode).
    db_prepare_threshold: int | None = 5
    db_statement_timeout_ms: int = 30_000
    tenant_purge_grace: timedelta = timedelta(days=30)
    log_level: str = "INFO"
    log_json: bool = True
    queue_prefix: str = "erp"
    rate_limits: RateLimits = field(default_factory=RateLimits)

    @classmethod
    def from_env(cls) -> Settings:
        threshold_raw = os.environ.get("DB_PREPARE_THRESHOLD", "5")
        threshold = None if threshold_raw.lower() in ("", "none", "off") else int(threshold_raw)
        secret = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32)
        return cls(
            database_url=os.environ.get("DATABASE_URL", cls.database_url),
            migration_database_url=os.environ.get("MIGRATION_DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL", cls.redis_url),
            secret_key=secret,
            api_key_env=os.environ.get("API_KEY_ENV", "live"),
            problem_base_uri=os.environ.get("PROBLEM_BASE_URI", cls.problem_base_uri),
            max_content_length=_env_int("MAX_CONTENT_LENGTH", cls.max_content_length),
            db_pool_size=_env_int("DB_POOL_SIZE", cls.db_pool_size),
            db_max_overflow=_env_int("DB_MAX_OVERFLOW", cls.db_max_overflow),
            db_pool_timeout=_env_int("DB_POOL_TIMEOUT", cls.db_pool_timeout),
            db_pool_pre_ping=_env_bool("DB_POOL_PRE_PING", False),
            db_pool_recycle=_env_int("DB_POOL_RECYCLE", 1800),
            db_prepare_threshold=threshold,
            db_statement_timeout_ms=_env_int("DB_STATEMENT_TIMEOUT_MS", 30_000),
            tenant_purge_grace=timedelta(days=_env_int("TENANT_PURGE_GRACE_DAYS", 30)),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            log_json=_env_bool("LOG_JSON", True),
            queue_prefix=os.environ.get("QUEUE_PREFIX", "erp"),
            rate_limits=RateLimits.parse(os.environ.get("RATE_LIMITS", "")),
        )

    def replace(self, **changes: object) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]
