"""Typed settings, read from the environment once, when the app or a CLI command starts.

Every value is checked here, so a typo fails at start-up with a line naming the
variable (`SettingsError`), not later as a traceback from deep inside a request.
An empty value counts as unset (compose files often write `FOO=`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
API_KEY_ENVS = ("live", "test")
ENVIRONMENTS = ("production", "development")

UNSET_SIGNING_KEY = (
    "SECRET_KEY is not set: set it to one long random value shared by every API and "
    "worker process (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


#: Rate-limit scopes: a key's own requests, all keys of one tenant, one operator token.
RATE_LIMIT_SCOPES = ("key", "tenant", "operator", "channel")


@dataclass(frozen=True)
class RateLimits:
    """`limits` rate strings per scope (e.g. "600/minute"); None: that scope is off."""

    key: str | None = "1200/minute"
    tenant: str | None = "6000/minute"
    operator: str | None = "1200/minute"
    #: verified messages per sales channel (/hooks/v1/channels/{id}/orders)
    channel: str | None = "1200/minute"

    @classmethod
    def parse(cls, raw: str, name: str = "RATE_LIMITS") -> RateLimits:
        """`key=600/minute;tenant=3000/minute;operator=off`: unnamed scopes keep their
        defaults; `off` turns a scope off, a bare `off` all of them; several limits of
        one scope are comma-separated (`key=20/second,600/minute`)."""
        from limits import parse_many

        raw = raw.strip()
        if raw.lower() == "off":
            return cls(key=None, tenant=None, operator=None, channel=None)
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


class _Reader:
    """Reads and checks variables, collecting every error before raising one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _parse(
        self, name: str, default: T, parse: Callable[[str], T], *, names_itself: bool = False
    ) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.errors.append(str(exc) if names_itself else f"{name}: {exc}")
            return default

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        def parse(raw: str) -> int:
            try:
                value = int(raw, 10)
            except ValueError:
                raise ValueError(f"expected an integer, got {raw!r}") from None
            if value < minimum:
                raise ValueError(f"expected an integer >= {minimum}, got {raw!r}")
            return value

        return self._parse(name, default, parse)

    def integer_or_none(self, name: str, default: int | None) -> int | None:
        """A non-negative integer, or `none`/`off` for no value."""

        def parse(raw: str) -> int | None:
            if raw.lower() in ("none", "off"):
                return None
            if not raw.isdigit():
                raise ValueError(f"expected an integer or 'none', got {raw!r}")
            return int(raw, 10)

        return self._parse(name, default, parse)

    def boolean(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(f"expected true or false (1/0, yes/no, on/off), got {raw!r}")

        return self._parse(name, default, parse)

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, upper: bool) -> str:
        def parse(raw: str) -> str:
            value = raw.upper() if upper else raw
            if value not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
            return value

        return self._parse(name, default, parse)

    def parsed(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        """A value `parse` reads; its ValueError already names the variable."""
        return self._parse(name, default, parse, names_itself=True)

    def url(self, name: str, default: T, schemes: tuple[str, ...]) -> str | T:
        """A URL of one of `schemes`; the value is never echoed (it may hold a password)."""
        raw = self.raw(name)
        if raw is None:
            return default
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in schemes:
            got = f"a {scheme}:// URL" if scheme else "no URL scheme"
            wanted = ", ".join(f"{s}://" for s in schemes)
            self.errors.append(f"{name}: expected a URL starting with {wanted}, got {got}")
            return default
        return raw


UNSET_KEYS = (
    "ENCRYPTION_KEYS is not set: set it to one or more Fernet keys, comma-separated, the "
    "same in every process (`erp secrets generate-key` prints one)"
)


def parse_keys(raw: str, name: str = "ENCRYPTION_KEYS") -> tuple[str, ...]:
    """Fernet keys (erp/secretbox.py), each checked; a bad one is named by position,
    never echoed."""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError(f"{name}: no key given")
    for position, key in enumerate(keys, start=1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ValueError(
                f"{name}: key {position} is not a Fernet key (32 bytes, url-safe base64)"
            )
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: a key is listed twice")
    return keys


def parse_hosts(raw: str) -> tuple[str, ...]:
    """A comma-separated list of host names or addresses (WEBHOOK_ALLOWED_HOSTS)."""
    hosts = tuple(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9._:-]{1,253}", host):
            raise ValueError(f"WEBHOOK_ALLOWED_HOSTS: {host!r} is not a host name or address")
    return hosts


_PG = ("postgresql", "postgres", "postgresql+psycopg")
_REDIS = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://erp_app@127.0.0.1:5432/erp"
    migration_database_url: str | None = None
    #: The webhooks listener's LISTEN session (`erp webhooks listen`): a direct
    #: connection (or pgbouncer in session mode), never transaction pooling. None:
    #: DATABASE_URL.
    listen_database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Signs pagination cursors: every process must share it (see `require_secret_key`).
    secret_key: str = ""
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
    # Per transaction (the tenant pin carries them) and erp_app's role defaults.
    db_statement_timeout_ms: int = 30_000
    db_lock_timeout_ms: int = 10_000
    db_idle_in_transaction_timeout_ms: int = 60_000
    tenant_purge_grace: timedelta = timedelta(days=30)
    log_level: str = "INFO"
    log_json: bool = True
    queue_prefix: str = "erp"
    #: Jobs one `erp worker` process runs at once, each in a thread (erp/worker.py);
    #: 0: RQ's forking worker (a work horse per job, one at a time). Measured in
    #: bench/README.md (the webhooks scenarios).
    worker_threads: int = 16
    rate_limits: RateLimits = field(default_factory=RateLimits)
    #: Longest a process serves a verified API key from memory (erp/tenancy/keycache.py);
    #: changes made through the API apply everywhere within 0.1 s regardless. 0: off.
    auth_cache_seconds: int = 10
    #: Fernet keys for secrets at rest (erp/secretbox.py): the first encrypts, all decrypt.
    encryption_keys: tuple[str, ...] = ()
    #: Hosts (names or literal addresses, lower case) webhook deliveries may reach over
    #: plain http or at a loopback/private/link-local/metadata address (API.md, Webhooks).
    webhook_allowed_hosts: tuple[str, ...] = ()
    #: `development` (what `erp dev` sets) or `production`: outside development the
    #: session cookie is Secure and an OIDC issuer must be https.
    environment: str = "production"
    #: The platform's default OpenID Connect connection (a tenant may add its own).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    #: Invitations are mailed through this server (smtp:// or smtps://); unset: the
    #: link is only returned.
    smtp_url: str | None = None
    #: The development-only sign-in of `make run` (/auth/dev-login); refused outside
    #: ENVIRONMENT=development.
    dev_sign_in: bool = False
    #: Benchmarks only (bench/scenarios/rls_request.py): the runtime login is a BYPASSRLS
    #: role and tenant queries filter by the tenant themselves, the ceiling RLS is
    #: measured against. No environment variable sets it: only code that builds
    #: Settings can, and only bench/ does; `erp serve` and `erp worker` refuse such a
    #: login whatever the environment says.
    bench_rls_ceiling: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (default: the process environment), all checked.

        Raises `SettingsError` listing every malformed variable, one per line.
        A missing SECRET_KEY is not an error here: only the commands that sign
        things (`erp serve`, `erp worker`) require it.
        """
        r = _Reader(os.environ if env is None else env)
        settings = cls(
            database_url=r.url("DATABASE_URL", cls.database_url, _PG),
            migration_database_url=r.url("MIGRATION_DATABASE_URL", None, _PG),
            listen_database_url=r.url("LISTEN_DATABASE_URL", None, _PG),
            redis_url=r.url("REDIS_URL", cls.redis_url, _REDIS),
            secret_key=r.raw("SECRET_KEY") or "",
            api_key_env=r.choice("API_KEY_ENV", cls.api_key_env, API_KEY_ENVS, upper=False),
            problem_base_uri=r.text("PROBLEM_BASE_URI", cls.problem_base_uri),
            max_content_length=r.integer("MAX_CONTENT_LENGTH", cls.max_content_length, minimum=1),
            db_pool_size=r.integer("DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            db_max_overflow=r.integer("DB_MAX_OVERFLOW", cls.db_max_overflow),
            db_pool_timeout=r.integer("DB_POOL_TIMEOUT", cls.db_pool_timeout),
            db_pool_pre_ping=r.boolean("DB_POOL_PRE_PING", cls.db_pool_pre_ping),
            db_pool_recycle=r.integer("DB_POOL_RECYCLE", cls.db_pool_recycle, minimum=-1),
            db_prepare_threshold=r.integer_or_none(
                "DB_PREPARE_THRESHOLD", cls.db_prepare_threshold
            ),
            db_statement_timeout_ms=r.integer(
                "DB_STATEMENT_TIMEOUT_MS", cls.db_statement_timeout_ms
            ),
            db_lock_timeout_ms=r.integer("DB_LOCK_TIMEOUT_MS", cls.db_lock_timeout_ms),
            db_idle_in_transaction_timeout_ms=r.integer(
                "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", cls.db_idle_in_transaction_timeout_ms
            ),
            tenant_purge_grace=timedelta(
                days=r.integer("TENANT_PURGE_GRACE_DAYS", cls.tenant_purge_grace.days)
            ),
            log_level=r.choice("LOG_LEVEL", cls.log_level, LOG_LEVELS, upper=True),
            log_json=r.boolean("LOG_JSON", cls.log_json),
            queue_prefix=r.text("QUEUE_PREFIX", cls.queue_prefix),
            worker_threads=r.integer("WORKER_THREADS", cls.worker_threads, minimum=0),
            rate_limits=r.parsed("RATE_LIMITS", RateLimits(), RateLimits.parse),
            auth_cache_seconds=r.integer("AUTH_CACHE_SECONDS", cls.auth_cache_seconds),
            encryption_keys=r.parsed("ENCRYPTION_KEYS", (), parse_keys),
            webhook_allowed_hosts=r.parsed("WEBHOOK_ALLOWED_HOSTS", (), parse_hosts),
            environment=r.choice("ENVIRONMENT", cls.environment, ENVIRONMENTS, upper=False),
            oidc_issuer=r.url("OIDC_ISSUER", None, ("https", "http")),
            oidc_client_id=r.raw("OIDC_CLIENT_ID"),
            oidc_client_secret=r.raw("OIDC_CLIENT_SECRET"),
            smtp_url=r.url("SMTP_URL", None, ("smtp", "smtps")),
            dev_sign_in=r.boolean("DEV_SIGN_IN", cls.dev_sign_in),
        )
        r.errors += settings.sign_in_errors()
        if r.errors:
            raise SettingsError("\n".join(r.errors))
        return settings

    @property
    def development(self) -> bool:
        return self.environment == "development"

    def sign_in_errors(self) -> list[str]:
        """What is wrong with the sign-in settings, one line per variable."""
        errors = []
        oidc = {
            "OIDC_ISSUER": self.oidc_issuer,
            "OIDC_CLIENT_ID": self.oidc_client_id,
            "OIDC_CLIENT_SECRET": self.oidc_client_secret,
        }
        given = [name for name, value in oidc.items() if value]
        if given and len(given) < len(oidc):
            missing = ", ".join(name for name in oidc if name not in given)
            errors.append(f"{missing}: required when {', '.join(given)} is set")
        issuer = self.oidc_issuer or ""
        if issuer and not self.development and not issuer.startswith("https://"):
            errors.append("OIDC_ISSUER: expected an https:// URL outside ENVIRONMENT=development")
        if self.dev_sign_in and not self.development:
            errors.append(
                "DEV_SIGN_IN: the development sign-in needs ENVIRONMENT=development; "
                "it never runs with production settings"
            )
        return errors

    def db_timeouts(self) -> dict[str, int]:
        """PostgreSQL timeouts (ms) of every app transaction and of erp_app's logins."""
        return {
            "statement_timeout": self.db_statement_timeout_ms,
            "lock_timeout": self.db_lock_timeout_ms,
            "idle_in_transaction_session_timeout": self.db_idle_in_transaction_timeout_ms,
        }

    def listen_url(self) -> str:
        """LISTEN_DATABASE_URL, else DATABASE_URL (psycopg's plain URL form)."""
        url = self.listen_database_url or self.database_url
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def require_secret_key(self) -> None:
        """Refuse to sign with a per-process key: another process could not verify it."""
        if not self.secret_key:
            raise SettingsError(UNSET_SIGNING_KEY)

    def require_encryption_keys(self) -> None:
        """Refuse to run a process that would store or read secrets without keys."""
        if not self.encryption_keys:
            raise SettingsError(UNSET_KEYS)

    def replace(self, **changes: object) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]
