"""The dataclasses the reservation services take and return (erp/inventory/reservations.py);
the order pipeline reaches them, with the services, through `erp.inventory.services`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# -- reservations (erp/inventory/reservations.py) -------------------------------------


@dataclass(frozen=True)
class ReserveLine:
    item_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int
    order_line_id: uuid.UUID | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Reserve:
    """Reserve every line or none; `order_id` (and each line's `order_line_id`) for an
    order's reservations, None for a manual one."""

    lines: Sequence[ReserveLine]
    order_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ConsumeLine:
    reservation_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class Consume:
    """Consume reserved units on shipment: `issue` moves whose source is
    (`source_type`, `source_id`) and whose value the caller posts in one ledger
    transaction, `transaction_id`, in the same database transaction."""

    lines: Sequence[ConsumeLine]
    source_type: str = "fulfilment"
    source_id: uuid.UUID | None = None
    transaction_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ConsumedLine:
    reservation_id: uuid.UUID
    move_id: uuid.UUID
    item_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int
    #: the units' cost at the moving average, base currency (the move's value)
    value: int


@dataclass
class ReservationView:
    id: uuid.UUID
    item_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int
    consumed: int
    status: str
    order_id: uuid.UUID | None
    order_line_id: uuid.UUID | None
    reference: str | None
    created_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ReservationView:
        return cls(
            id=row.id,
            item_id=row.item_id,
            location_id=row.location_id,
            quantity=row.quantity,
            consumed=row.consumed,
            status=row.status,
            order_id=row.order_id,
            order_line_id=row.order_line_id,
            reference=row.reference,
            created_at=row.created_at,
        )

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ReservationView:
        """A row of the SQL functions' `json_agg` (ids and times as JSON strings)."""

        def opt(key: str) -> uuid.UUID | None:
            return None if row[key] is None else uuid.UUID(row[key])

        return cls(
            id=uuid.UUID(row["id"]),
            item_id=uuid.UUID(row["item_id"]),
            location_id=uuid.UUID(row["location_id"]),
            quantity=int(row["quantity"]),
            consumed=int(row["consumed"]),
            status=row["status"],
            order_id=opt("order_id"),
            order_line_id=opt("order_line_id"),
            reference=row["reference"],
            created_at=datetime.fromisoformat(row["created_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        """What the reservation schema dumps (tests/inventory check the two agree)."""
        return {
            "id": str(self.id),
            "item_id": str(self.item_id),
            "location_id": str(self.location_id),
            "quantity": self.quantity,
            "consumed": self.consumed,
            "status": self.status,
            "order_id": None if self.order_id is None else str(self.order_id),
            "order_line_id": None if self.order_line_id is None else str(self.order_line_id),
            "reference": self.reference,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }
