"""What `GET /webhooks/event-types` serves: each type's description and the JSON Schema
of its `data` (API.md, Outbound events), as the domain registered it with its schema
file (erp/event_schemas/<type>.json; `erp.registry.Registry.events`)."""

from __future__ import annotations

from typing import Any

from erp.registry import registry


def event_types(names: list[str]) -> list[dict[str, Any]]:
    schemas = registry().event_schemas
    return [
        {"type": n, "description": schemas[n].description, "schema": schemas[n].schema}
        for n in names
    ]
