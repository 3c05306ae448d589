"""`erp`: serve, stream, worker, migrate, dev, tenants, operators, keys, secrets, bench.

Commands that create a secret print it alone on the last line of stdout.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import click

from erp.clitools import as_operator as _ops
from erp.clitools import load_input as _load
from erp.clitools import migration_url as _migration_url
from erp.clitools import settings as _settings
from erp.config import SettingsError

T = TypeVar("T")


def _env_int(name: str, default: int) -> Callable[[], int]:
    """An option default from the environment, refused with the variable's name."""

    def read() -> int:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw, 10)
        except ValueError:
            raise click.BadParameter(f"{name}: expected an integer, got {raw!r}") from None

    return read


class _ErpGroup(click.Group):
    """The core's commands, and each registered domain's group (`erp ledger ...`)."""

    def _domain_groups(self) -> dict[str, click.Command]:
        from erp.registry import registry

        return {g.name: g for g in registry().cli_groups}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._domain_groups()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._domain_groups().get(cmd_name)


@click.group(cls=_ErpGroup)
def main() -> None:
    """The ERP platform's command line."""


@main.command()
@click.option(
    "--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="$HOST or 127.0.0.1"
)
@click.option("--port", default=_env_int("PORT", 8000), type=int, show_default="$PORT or 8000")
@click.option(
    "--workers",
    default=_env_int("WEB_CONCURRENCY", 2),
    type=int,
    show_default="$WEB_CONCURRENCY or 2",
)
@click.option("--threads", default=4, type=int)
@click.option(
    "--worker-class",
    type=click.Choice(["sync", "gthread"]),
    default=None,
    help="gunicorn's worker model (default: gthread with more than one thread, else sync).",
)
def serve(host: str, port: int, workers: int, threads: int, worker_class: str | None) -> None:
    """Run the API under gunicorn.

    Refused without SECRET_KEY (each worker would sign cursors with its own key)
    and if DATABASE_URL could bypass row-level security.
    """
    from erp.db import PrivilegedLoginError, assert_unprivileged, make_engine
    from erp.server import run_gunicorn

    engine = make_engine(_settings(signing=True), pool_size=1, max_overflow=0)
    try:
        assert_unprivileged(engine)
    except PrivilegedLoginError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    run_gunicorn(host, port, workers, threads, worker_class)


@main.command()
@click.option(
    "--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="$HOST or 127.0.0.1"
)
@click.option(
    "--port", default=_env_int("STREAM_PORT", 8001), type=int, show_default="$STREAM_PORT or 8001"
)
@click.option(
    "--workers",
    default=_env_int("STREAM_WORKERS", 1),
    type=int,
    show_default="$STREAM_WORKERS or 1",
)
@click.option(
    "--threads",
    default=_env_int("STREAM_THREADS", 256),
    type=int,
    show_default="$STREAM_THREADS or 256",
    help="Threads per worker; each open stream holds one (a few are kept for /healthz).",
)
def stream(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the live streams (GET /api/v1/inventory/events) apart from the API.

    The same app under gunicorn gthread with many threads: a stream holds its thread
    while open, so the API's few threads stay free for ordinary requests (the ingress
    routes the stream's path here; docs/operations.md, "Streams").
    """
    from erp.db import PrivilegedLoginError, assert_unprivileged, make_engine
    from erp.server import STREAM_RESERVED_THREADS, run_gunicorn, stream_app

    if threads <= STREAM_RESERVED_THREADS:
        raise click.BadParameter(f"at least {STREAM_RESERVED_THREADS + 1}", param_hint="--threads")
    engine = make_engine(_settings(signing=True), pool_size=1, max_overflow=0)
    try:
        assert_unprivileged(engine)
    except PrivilegedLoginError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    run_gunicorn(host, port, workers, threads, "gthread", app=partial(stream_app, threads))


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=None,
    help="Jobs run at once, each in a thread of this process (default: WORKER_THREADS, "
    "16); 0: RQ's forking worker, one job at a time.",
)
def worker(burst: bool, threads: int | None) -> None:
    """Run an RQ worker (with the scheduler, for retries) on every queue.

    Non-forking by default: up to WORKER_THREADS jobs at once in threads, so a slow
    webhook endpoint holds one thread, not the process (erp/worker.py).
    Refused without SECRET_KEY, as `erp serve`: jobs run the same code.
    """
    from erp.worker import run_worker

    run_worker(_settings(signing=True), burst=burst, threads=threads)


@main.command()
def scheduler() -> None:
    """Enqueue periodic work on its interval (one active per deployment, leader-locked)."""
    from erp.scheduler import run_scheduler

    run_scheduler(_settings())


@main.command()
@click.option("--revision", default="head")
@click.option(
    "--app-password",
    envvar="ERP_APP_PASSWORD",
    default=None,
    help="Set erp_app's login password (env ERP_APP_PASSWORD).",
)
def migrate(revision: str, app_password: str | None) -> None:
    """Create the roles and upgrade the schema, as MIGRATION_DATABASE_URL's login.

    \b
    The first run on a PostgreSQL server needs a superuser login: only a superuser
    may create the BYPASSRLS role erp_auth (PostgreSQL 15). Later runs need only a
    login with CREATEROLE that is a member of erp_owner and erp_auth (it owns the
    schemas through erp_owner); steps that are already done are skipped.
    It also sets erp_app's DB_*_TIMEOUT_MS defaults in this database.
    """
    from erp.migrate import MigrateError, upgrade

    settings = _settings()
    try:
        upgrade(_migration_url(settings), revision, app_password, settings)
    except MigrateError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"migrated to {revision}")


@main.command()
@click.option("--port", default=8000, type=int)
@click.option("--data-dir", default=".data", type=click.Path(file_okay=False))
def dev(port: int, data_dir: str) -> None:
    """Embedded PostgreSQL and Redis, migrations, a demo tenant, the API and a worker."""
    from erp.devserver import run_dev

    _settings()  # a malformed variable is refused before anything starts
    run_dev(port=port, data_dir=data_dir)


# -- tenants ------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Provision and manage tenants."""


def _tenant_line(t: Any) -> str:
    return f"{t.id}\t{t.slug}\t{t.status}\t{t.base_currency}\t{t.name}"


@tenants.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--currency", "base_currency", default="USD", show_default=True)
@click.option("--template", default="default", show_default=True)
def tenants_create(slug: str, name: str, base_currency: str, template: str) -> None:
    from erp.tenancy import schemas, services

    body = {"slug": slug, "name": name, "base_currency": base_currency, "template": template}
    cmd = services.ProvisionTenant(**_load(schemas.TenantIn, body))
    tenant, created = _ops(lambda s: services.provision_tenant(s, cmd))
    click.echo(("created\t" if created else "exists\t") + _tenant_line(tenant))


@tenants.command("list")
def tenants_list() -> None:
    from erp.tenancy import services

    def listed(s: Any) -> list[Any]:
        found = services.list_tenants(s)
        services.tenants_listed(s, None, len(found))  # audited as the API's list is
        return found

    for t in _ops(listed):
        click.echo(_tenant_line(t))


def _tenant_id(ref: str) -> Callable[[Any], UUID]:
    def resolve(s: Any) -> UUID:
        from sqlalchemy import select

        from erp.tenancy.models import Tenant

        try:
            return UUID(ref)
        except ValueError:
            tid: UUID | None = s.scalar(select(Tenant.id).where(Tenant.slug == ref))
            if tid is None:
                raise click.ClickException(f"no tenant {ref!r}") from None
            return tid

    return resolve


@tenants.command("suspend")
@click.argument("tenant")
@click.option("--reason", required=True)
def tenants_suspend(tenant: str, reason: str) -> None:
    from erp.tenancy import services

    t = _ops(lambda s: services.suspend_tenant(s, _tenant_id(tenant)(s), reason))
    click.echo(_tenant_line(t))


@tenants.command("reactivate")
@click.argument("tenant")
def tenants_reactivate(tenant: str) -> None:
    from erp.tenancy import services

    t = _ops(lambda s: services.reactivate_tenant(s, _tenant_id(tenant)(s)))
    click.echo(_tenant_line(t))


@tenants.command("delete")
@click.argument("tenant")
def tenants_delete(tenant: str) -> None:
    """Schedule a purge after TENANT_PURGE_GRACE_DAYS."""
    from erp.tenancy import services

    grace = _settings().tenant_purge_grace
    t = _ops(lambda s: services.delete_tenant(s, _tenant_id(tenant)(s), grace))
    click.echo(_tenant_line(t))


@tenants.command("restore")
@click.argument("tenant")
def tenants_restore(tenant: str) -> None:
    from erp.tenancy import services

    t = _ops(lambda s: services.restore_tenant(s, _tenant_id(tenant)(s)))
    click.echo(_tenant_line(t))


@tenants.command("purge")
@click.option(
    "--tenant", "only", default=None, help="Purge this deleting tenant now, grace or not."
)
def tenants_purge(only: str | None) -> None:
    """Remove every row of tenants whose grace period is over (MIGRATION_DATABASE_URL)."""
    from erp.tenancy.purge import purge_due

    for tid, slug, rows in purge_due(_migration_url(_settings()), only):
        click.echo(f"purged\t{tid}\t{slug}\t{rows} rows")


# -- operators and keys ---------------------------------------------------------------


@main.group()
def operators() -> None:
    """Platform operators."""


@operators.command("create")
@click.argument("email")
def operators_create(email: str) -> None:
    """Create an operator; its token is printed once, on the last line."""
    from psycopg.errors import UniqueViolation

    from erp.tenancy.purge import create_operator_as_owner

    try:
        token = create_operator_as_owner(_migration_url(_settings()), email)
    except UniqueViolation as exc:
        raise click.ClickException(f"an operator {email} exists already") from exc
    click.echo(f"operator {email} created; token:")
    click.echo(token)


@operators.command("list")
def operators_list() -> None:
    """Every operator: id, email, active or revoked, created (DATABASE_URL)."""
    from erp.tenancy import services

    for op in _ops(services.list_operators):
        state = "active" if op.revoked_at is None else f"revoked {op.revoked_at.isoformat()}"
        click.echo(f"{op.id}\t{op.email}\t{state}\t{op.created_at.isoformat()}")


@operators.command("revoke")
@click.argument("operator")
def operators_revoke(operator: str) -> None:
    """Revoke an operator (EMAIL or ID); its token fails from the next request. Audited."""
    from erp.tenancy.purge import revoke_operator_as_owner

    try:
        op_id, email, now = revoke_operator_as_owner(_migration_url(_settings()), operator)
    except LookupError:
        raise click.ClickException(f"no operator {operator!r}") from None
    click.echo(f"{'revoked' if now else 'already revoked'}\t{op_id}\t{email}")


@main.group()
def keys() -> None:
    """API keys of a tenant."""


@keys.command("create")
@click.argument("tenant")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="Repeat for each scope.")
def keys_create(tenant: str, name: str, scopes: tuple[str, ...]) -> None:
    """Issue a key; printed once, on the last line."""
    from erp.tenancy import schemas, services

    env = _settings().api_key_env
    cmd = services.CreateApiKey(**_load(schemas.ApiKeyIn, {"name": name, "scopes": list(scopes)}))

    def issue(s: Any) -> str:
        _key, raw = services.issue_tenant_key(s, _tenant_id(tenant)(s), cmd, env)
        return raw

    raw = _ops(issue)
    click.echo(f"key {name} created for {tenant}:")
    click.echo(raw)


@keys.command("revoke")
@click.argument("tenant")
@click.argument("key_id", type=click.UUID)
def keys_revoke(tenant: str, key_id: UUID) -> None:
    from erp.tenancy import services

    def revoke(s: Any) -> None:
        services.revoke_tenant_key(s, _tenant_id(tenant)(s), key_id)

    _ops(revoke)
    click.echo(f"revoked {key_id}")


@main.group()
def secrets() -> None:
    """Secrets at rest (ENCRYPTION_KEYS, erp/secretbox.py)."""


@secrets.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new Fernet key, to put first in ENCRYPTION_KEYS."""
    from erp.secretbox import generate_key

    click.echo(generate_key())


@secrets.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every registered secret of every tenant with the first key.

    Run it after putting a new key first in ENCRYPTION_KEYS (and rolling every
    process); drop the old key only afterwards. Safe to re-run.
    """
    from erp.clitools import in_each_tenant
    from erp.registry import registry
    from erp.secretbox import SecretBoxError, box_for, rotate_tenant
    from erp.tenancy.services import list_tenants

    columns = registry().encrypted_columns
    checked = _settings()
    try:
        checked.require_encryption_keys()
        box = box_for(checked.encryption_keys)
    except (SettingsError, SecretBoxError) as exc:
        raise click.ClickException(str(exc)) from exc
    tenant_ids = [t.id for t in _ops(list_tenants)]
    try:
        counts = in_each_tenant(
            tenant_ids, lambda s: rotate_tenant(s, columns, box), "system:secrets-rotate"
        )
    except SecretBoxError as exc:
        raise click.ClickException(str(exc)) from exc
    for tid, count in zip(tenant_ids, counts, strict=True):
        click.echo(f"{tid}\t{count} re-encrypted")
    names = ", ".join(f"{c.table}.{c.column}" for c in columns) or "none registered"
    click.echo(f"{sum(counts)} secrets re-encrypted in {len(tenant_ids)} tenants ({names})")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True, help="Small data sets, for a smoke run.")
def bench(names: tuple[str, ...], quick: bool) -> None:
    """Run benchmark scenarios (bench/); all when none is named."""
    from erp.paths import ROOT

    sys.path.insert(0, str(ROOT))
    runner = importlib.import_module("bench.runner")
    raise SystemExit(runner.main(list(names), quick=quick))


if __name__ == "__main__":
    main()
