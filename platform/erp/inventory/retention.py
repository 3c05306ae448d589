"""The purge of inventory.level_changes (`erp scheduler`, every 15 minutes).

A level_changes row lives for its transaction: `inventory.note_change` upserts it and
the commit-time trigger turns it into the `stock.changed` event (docs/inventory.md,
Events). Afterwards nothing reads it, and it is one row per level and commit, so rows
older than RETENTION are deleted: discovery names the tenants holding any (ids only,
DESIGN.md §3), then each tenant's are deleted in batches, in transactions pinned to
that tenant, under RLS. Safe to run twice or concurrently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from erp.db import changed, db

#: How long a row is kept after its transaction (for a look while debugging).
RETENTION = timedelta(days=1)
#: Rows deleted per transaction, and tenants per discovery round.
BATCH = 5000
DISCOVERY_BATCH = 500

_DISCOVER = text("SELECT * FROM app.tenants_with_old_level_changes(:before, :limit)")
_DELETE = text("""
    DELETE FROM inventory.level_changes
     WHERE id IN (SELECT id FROM inventory.level_changes
                   WHERE created_at < :before
                   ORDER BY created_at, id
                   LIMIT :limit)
""")


def purge_level_changes(now: datetime | None = None) -> int:
    """Delete every tenant's level_changes rows older than RETENTION; how many."""
    db.fork_safe()
    before = (now or datetime.now(UTC)) - RETENTION
    deleted = 0
    params = {"before": before, "limit": BATCH}
    while True:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            found = conn.execute(_DISCOVER, {"before": before, "limit": DISCOVERY_BATCH})
            tenants = list(found.scalars())
        for tenant in tenants:
            while True:
                n = db.unit_of_work(lambda s: changed(s, _DELETE, params), tenant=tenant)
                deleted += n
                if n < BATCH:
                    break
        if len(tenants) < DISCOVERY_BATCH:
            return deleted
