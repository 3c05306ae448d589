"""inventory.level_changes is purged after RETENTION (erp/inventory/retention.py): every
tenant's old rows go, tenant by tenant under RLS; newer rows and the events they
became stay; a second run finds nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from erp.inventory import retention
from erp.scheduler import periodic_tasks
from tests.inventory.conftest import open_stock


def test_old_level_changes_of_every_tenant_are_purged_and_the_rest_kept(
    app: Any, client: Any, ops_headers: dict[str, str], app_url: str, owner_url: str
) -> None:
    shops = [open_stock(client, ops_headers, app_url) for _ in range(2)]
    for shop in shops:
        item = shop.item()
        for _ in range(3):
            shop.committed_move("receipt", item, 5, to=shop.main, unit_cost=100)
    with psycopg.connect(owner_url, autocommit=True) as conn:  # superuser: past RLS
        for shop in shops:  # two of each tenant's three rows are two days old
            conn.execute(
                "UPDATE inventory.level_changes SET created_at = now() - interval '2 days'"
                " WHERE id IN (SELECT id FROM inventory.level_changes WHERE tenant_id = %s"
                " ORDER BY created_at, id LIMIT 2)",
                (shop.tenant.id,),
            )
    events_before = [len(s.events("stock.changed")) for s in shops]
    with app.app_context():
        assert retention.purge_level_changes() >= 4  # other tests' old rows count too
        assert retention.purge_level_changes() == 0
    for shop, before in zip(shops, events_before, strict=True):
        assert shop.one("SELECT count(*) FROM inventory.level_changes") == 1  # the recent
        assert len(shop.events("stock.changed")) == before == 3


def test_a_row_is_purged_once_it_is_older_than_the_retention(
    app: Any, client: Any, ops_headers: dict[str, str], app_url: str, owner_url: str
) -> None:
    shop = open_stock(client, ops_headers, app_url)
    shop.committed_move("receipt", shop.item(), 5, to=shop.main, unit_cost=100)

    def aged(age: timedelta) -> int:
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE inventory.level_changes SET created_at = now() - %s WHERE tenant_id = %s",
                (age, shop.tenant.id),
            )
        with app.app_context():
            retention.purge_level_changes()
        return int(shop.one("SELECT count(*) FROM inventory.level_changes"))

    assert aged(retention.RETENTION - timedelta(minutes=1)) == 1
    assert aged(retention.RETENTION + timedelta(minutes=1)) == 0


def test_the_purge_is_scheduled() -> None:
    names = {t.name: t for t in periodic_tasks()}
    task = names["inventory.purge_level_changes"]
    assert task.func == "erp.inventory.retention.purge_level_changes"
    assert task.every <= timedelta(hours=1)
