"""`erp ledger ...`: maintenance commands, registered by the ledger itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import text

from erp.clitools import as_operator, in_each_tenant
from erp.tenancy import services as tenancy


@click.group("ledger")
def group() -> None:
    """Ledger maintenance."""


@group.command("compact")
@click.option(
    "--keep-days",
    default=2,
    show_default=True,
    type=int,
    help="Leave this many recent days' writer slots alone.",
)
def compact(keep_days: int) -> None:
    """Fold old balance-delta slots into one row per account and day, and per account and
    hour (no balance changes)."""
    before = datetime.now(UTC).date() - timedelta(days=keep_days)
    tenant_ids = [t.id for t in as_operator(tenancy.list_tenants)]

    def fold(s: Any) -> int:
        merged: int = s.execute(
            text("SELECT ledger.compact_balance_deltas(:d) + ledger.compact_balance_hours(:d)"),
            {"d": before},
        ).scalar_one()
        return merged

    for tid, merged in zip(tenant_ids, in_each_tenant(tenant_ids, fold, "system:cli"), strict=True):
        click.echo(f"{tid}\t{merged} rows merged")
