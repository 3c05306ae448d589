"""Inventory's inputs and outputs as plain data (no Flask, no ORM state)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _s(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class NewItem:
    sku: str
    name: str
    unit: str
    reorder_point: int | None = None


@dataclass(frozen=True)
class NewLocation:
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None = None
    allow_negative: bool = False


@dataclass(frozen=True)
class NewMove:
    kind: str
    item_id: uuid.UUID
    quantity: int
    from_location_id: uuid.UUID | None = None
    to_location_id: uuid.UUID | None = None
    unit_cost: int | None = None
    reason_code: str | None = None
    reason: str | None = None
    reference: str | None = None
    counter_account_id: uuid.UUID | None = None


@dataclass
class MoveView:
    id: uuid.UUID
    kind: str
    item_id: uuid.UUID
    quantity: int
    from_location_id: uuid.UUID | None
    to_location_id: uuid.UUID | None
    unit_cost: int | None
    value: int | None
    currency: str | None
    reason_code: str | None
    reason: str | None
    reference: str | None
    source_type: str | None
    source_id: uuid.UUID | None
    transaction_id: uuid.UUID | None
    created_at: datetime

    @property
    def source(self) -> dict[str, str] | None:
        if self.source_type is None or self.source_id is None:
            return None
        return {"type": self.source_type, "id": str(self.source_id)}

    def to_json(self) -> dict[str, Any]:
        """What `schemas.MoveOut` dumps, built directly for the hot route (tests check)."""
        return {
            "id": str(self.id),
            "kind": self.kind,
            "item_id": str(self.item_id),
            "quantity": self.quantity,
            "from_location_id": _s(self.from_location_id),
            "to_location_id": _s(self.to_location_id),
            "unit_cost": self.unit_cost,
            "value": self.value,
            "currency": self.currency,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "reference": self.reference,
            "source": self.source,
            "transaction_id": _s(self.transaction_id),
            "created_at": self.created_at.isoformat(),
        }


@dataclass
class ItemView:
    id: uuid.UUID
    sku: str
    name: str
    unit: str
    reorder_point: int | None
    archived: bool
    on_hand: int
    reserved: int
    value: int
    currency: str | None
    created_at: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass
class LocationView:
    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    allow_negative: bool
    default: bool
    archived: bool
    created_at: datetime


@dataclass
class LevelView:
    item_id: uuid.UUID
    sku: str
    location_id: uuid.UUID
    on_hand: int
    reserved: int
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved
