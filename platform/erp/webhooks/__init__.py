"""The outbox: events written in the same transaction as the change they describe.

Deliveries, endpoints and signing arrive with the webhooks issue; they read this table.
Each domain registers the event types it emits (`Registry.events`).
"""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    r.catalog(append_only=["webhooks.outbox_events"])
