"""Per-request (or per-job) context that is not the tenant: who acts, under which request id."""

from __future__ import annotations

from contextvars import ContextVar

#: "api_key:<uuid>", "operator:<uuid>", "user:<uuid>", "system:<what>".
current_actor: ContextVar[str] = ContextVar("erp_current_actor", default="system:unknown")
current_request_id: ContextVar[str | None] = ContextVar("erp_current_request_id", default=None)
