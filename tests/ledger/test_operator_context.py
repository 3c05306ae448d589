"""Ledger work done by operator tooling inside `acting_in_tenant` (provisioning, the demo
seed): deferred checks must run while that tenant is set, and templates must load
without an app (the CLI and `erp dev` do not create one)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from sqlalchemy import text

from erp.context import current_actor
from erp.db import acting_in_tenant
from erp.extensions import db
from erp.http import ErpFlask
from erp.tenancy import services as tenancy


def _provision_with_demo(s: Any, slug: str) -> uuid.UUID:
    from erp.registry import registry

    tenant, created = tenancy.provision_tenant(
        s, tenancy.ProvisionTenant(slug=slug, name="Demo", base_currency="USD")
    )
    assert created
    with acting_in_tenant(s, tenant.id):
        for seed in registry().demo_seeders:
            seed(s)
    return tenant.id


def test_postings_inside_acting_in_tenant_commit_and_balance(app: ErpFlask) -> None:
    token = current_actor.set("system:test")
    try:
        slug = f"demo-{uuid.uuid4().hex[:10]}"
        tid = db.unit_of_work(lambda s: _provision_with_demo(s, slug), tenant=None, role="erp_ops")
    finally:
        current_actor.reset(token)
    totals = db.unit_of_work(
        lambda s: s.execute(
            text(
                "SELECT count(DISTINCT transaction_id), coalesce(sum(amount), 0) "
                "FROM ledger.entries"
            )
        ).one(),
        tenant=tid,
    )
    assert totals[0] == 7  # the demo's seven transactions, all committed
    assert totals[1] == 0  # and together they balance


def test_default_template_loads_without_an_app() -> None:
    code = (
        "from erp.templates import load_template; "
        "t = load_template('default'); "
        "print(sorted(t.sections))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "ledger" in out
