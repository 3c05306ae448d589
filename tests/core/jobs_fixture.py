"""Test-only RQ jobs (enqueued by dotted path, run by an in-process worker)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.context import current_actor
from erp.jobs import tenant_job


@tenant_job
def visible_tenants(s: Session, label: str) -> dict[str, object]:
    """What a job of one tenant can see: tenant ids of every API key and audit row."""
    keys = s.execute(text("SELECT DISTINCT tenant_id::text FROM iam.api_keys")).scalars().all()
    audit = s.execute(text("SELECT DISTINCT tenant_id::text FROM iam.audit_log")).scalars().all()
    return {
        "label": label,
        "keys": sorted(keys),
        "audit": sorted(audit),
        "actor": current_actor.get(),
        "guc": s.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar_one(),
    }


def noop(*args: object) -> None:
    """A job that does nothing; its arguments are what the tests look at."""
