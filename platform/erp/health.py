"""/healthz (the process answers) and /readyz (PostgreSQL answers; Redis is reported).

Redis down degrades the API without stopping it (rate limits fall back to memory;
what must reach a worker is in the outbox), so it never takes a replica out of
service: /readyz says "degraded" with 200. Without PostgreSQL nothing works: 503.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text

from erp.extensions import db, queue

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int, dict[str, str]] | dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means "not ready", with its class named
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        queue.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if checks["postgres"] != "ok":
        return {"status": "unavailable", "checks": checks}, 503, {"Retry-After": "5"}
    return {"status": "ok" if checks["redis"] == "ok" else "degraded", "checks": checks}
