from __future__ import annotations

from typing import Any

from sqlalchemy import text

from erp.extensions import db


def freeze() -> dict[str, Any]:
    db.session.execute(
        text(
            "DO $$ BEGIN RAISE EXCEPTION 'frozen' USING ERRCODE = 'ES001', "
            "DETAIL = 'lines.0.note: Frozen since Monday.'; END $$"
        )
    )
    return {}
