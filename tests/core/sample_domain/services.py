from __future__ import annotations

from typing import Any

from sqlalchemy import text

from erp.db import call_one
from erp.extensions import db


def freeze() -> dict[str, Any]:
    db.session.execute(
        text(
            "DO $$ BEGIN RAISE EXCEPTION 'frozen' USING ERRCODE = 'ES001', "
            "DETAIL = 'lines.0.note: Frozen since Monday.'; END $$"
        )
    )
    return {}


PROBE = """
    SELECT current_setting('app.tenant_id') AS tenant,
           current_setting('statement_timeout') AS statement_timeout,
           current_query() AS message
"""


def probe() -> dict[str, Any]:
    """What the database saw: the pinned tenant, the timeout, the message the call came in."""
    row = call_one(db.session, PROBE, {})
    return {"tenant": row[0], "statement_timeout": row[1], "message": row[2]}


def probe_twice() -> dict[str, Any]:
    probe()
    return probe()
