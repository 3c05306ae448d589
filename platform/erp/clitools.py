"""What every `erp` command group shares, the core's and the domains' alike.

Commands that create a secret print it alone on the last line of stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from erp.config import Settings, SettingsError

T = TypeVar("T")


def settings(*, signing: bool = False) -> Settings:
    """The checked settings; `signing` commands (serve, worker) also need SECRET_KEY,
    and ENCRYPTION_KEYS once a domain registered an encrypted column.

    A malformed or missing variable is one line per variable and exit status 1.
    """
    try:
        checked = Settings.from_env()
        if signing:
            checked.require_secret_key()
            require_keys_if_used(checked)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    return checked


def require_keys_if_used(checked: Settings) -> None:
    from erp.registry import registry

    if registry().encrypted_columns:
        checked.require_encryption_keys()


def migration_url(s: Settings) -> str:
    if not s.migration_database_url:
        raise click.ClickException("MIGRATION_DATABASE_URL is not set")
    return s.migration_database_url


def _refusal(exc: Any) -> click.ClickException:
    fields = "".join(f"\n  {k}: {'; '.join(v)}" for k, v in (exc.errors or {}).items())
    return click.ClickException(f"{exc.slug}: {exc.detail}{fields}")


def as_operator(fn: Callable[[Any], T], actor: str = "system:cli") -> T:
    """Run `fn(session)` as an operator would (erp_ops), committed.

    A refusal of the rules (unknown tenant, wrong state, bad scope) is a one-line
    error and exit status 1, not a traceback.
    """
    from erp.context import current_actor
    from erp.errors import Problem
    from erp.extensions import db

    token = current_actor.set(actor)
    try:
        with db.using(settings(), pool_size=1, max_overflow=0):
            return db.unit_of_work(fn, tenant=None, role="erp_ops")
    except Problem as exc:
        raise _refusal(exc) from exc
    finally:
        current_actor.reset(token)


def in_each_tenant(tenant_ids: list[Any], fn: Callable[[Any], T], actor: str) -> list[T]:
    """Run `fn(session)` once per tenant, each in its own committed, tenant-pinned
    transaction under RLS (as erp_app), the way a job would."""
    from erp.context import current_actor
    from erp.errors import Problem
    from erp.extensions import db

    token = current_actor.set(actor)
    try:
        with db.using(settings(), pool_size=1, max_overflow=0):
            return [db.unit_of_work(fn, tenant=tid) for tid in tenant_ids]
    except Problem as exc:
        raise _refusal(exc) from exc
    finally:
        current_actor.reset(token)


def load_input(schema: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Check command-line input with the API's own schema, as a route would."""
    import marshmallow as ma

    from erp.errors import flatten_errors

    try:
        loaded: dict[str, Any] = schema().load(data)
    except ma.ValidationError as exc:
        errors = sorted(flatten_errors(exc.messages).items())
        fields = "".join(f"\n  {k}: {'; '.join(v)}" for k, v in errors)
        raise click.ClickException(f"validation: invalid input{fields}") from exc
    return loaded
