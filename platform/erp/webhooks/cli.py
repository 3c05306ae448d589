"""`erp webhooks ...`: the webhooks' long-running processes, registered by the domain."""

from __future__ import annotations

import click

from erp.clitools import settings


@click.group("webhooks")
def group() -> None:
    """Outbound webhooks."""


@group.command("listen")
def listen() -> None:
    """Dispatch each tenant's webhooks as soon as its events commit (LISTEN/NOTIFY).

    \b
    Holds a LISTEN session on LISTEN_DATABASE_URL (default: DATABASE_URL): a direct
    connection or pgbouncer in session mode, never transaction mode. Any number may
    run; `erp scheduler`'s sweep remains the safety net (and the retry clock).
    """
    from erp.webhooks.listener import run_listener

    run_listener(settings())
