"""What `GET /webhooks/event-types` serves: each type's description and the JSON Schema
of its `data` (API.md, Outbound events). A type a domain registers without an entry
here is served with a permissive object schema."""

from __future__ import annotations

from typing import Any

_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

KNOWN: dict[str, tuple[str, dict[str, Any]]] = {
    "ledger.transaction.posted": (
        "A ledger transaction became posted (direct, pending -> posted, reversal, "
        "adjustment, year-end).",
        {
            "type": "object",
            "required": [
                "id",
                "description",
                "status",
                "kind",
                "effective_at",
                "posted_at",
                "metadata",
                "reverses_id",
                "entries",
            ],
            "properties": {
                "id": _UUID,
                "description": {"type": "string"},
                "status": {"const": "posted"},
                "kind": {"type": "string"},
                "effective_at": _TIME,
                "posted_at": _TIME,
                "metadata": {"type": "object"},
                "reverses_id": {"type": ["string", "null"], "format": "uuid"},
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "account_id", "amount", "currency"],
                        "properties": {
                            "id": _UUID,
                            "account_id": _UUID,
                            "amount": {"type": "integer"},
                            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        },
                    },
                },
            },
        },
    ),
    "webhook_endpoint.disabled": (
        "The system disabled a webhook endpoint (it answered 410, or failed for 5 days).",
        {
            "type": "object",
            "required": ["id", "url", "disabled", "disabled_reason", "created_at"],
            "additionalProperties": False,
            "properties": {
                "id": _UUID,
                "url": {"type": "string"},
                "description": {"type": ["string", "null"]},
                "event_types": {"type": ["array", "null"], "items": {"type": "string"}},
                "disabled": {"const": True},
                "disabled_reason": {"enum": ["gone", "failing"]},
                "created_at": _TIME,
            },
        },
    ),
}


def event_types(registered: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in registered:
        description, schema = KNOWN.get(name, (name, {"type": "object"}))
        out.append({"type": name, "description": description, "schema": schema})
    return out
