"""The ledger's inputs and outputs as plain data (no Flask, no ORM state)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NewAccount:
    code: str
    name: str
    type: str
    currency: str
    parent_id: uuid.UUID | None = None
    guard: str = "none"
    role: str | None = None


@dataclass(frozen=True)
class EntryIn:
    account_id: uuid.UUID
    amount: int
    currency: str


@dataclass(frozen=True)
class PostTransaction:
    description: str
    entries: list[EntryIn]
    effective_at: datetime | None = None
    status: str = "posted"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Balance:
    account_id: uuid.UUID
    as_of: datetime
    posted: int
    pending: int
    currency: str


@dataclass(frozen=True)
class EntryView:
    id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    currency: str

    def to_json(self) -> dict[str, Any]:
        """What `schemas.EntryOut` dumps (and the event payload carries)."""
        return {
            "id": str(self.id),
            "account_id": str(self.account_id),
            "amount": self.amount,
            "currency": self.currency,
        }


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class TransactionView:
    id: uuid.UUID
    description: str
    status: str
    kind: str
    effective_at: datetime
    posted_at: datetime | None
    created_at: datetime
    metadata: dict[str, Any]
    reverses_id: uuid.UUID | None
    reversed_by_id: uuid.UUID | None
    adjusts_id: uuid.UUID | None
    adjusted_by_id: uuid.UUID | None
    entries: list[EntryView]

    def to_json(self) -> dict[str, Any]:
        """What `schemas.TransactionOut` dumps, built directly: the posting route's
        reply, where the schema's dump was a measurable share of the request (the
        schema stays the documented shape; tests/ledger checks the two agree)."""
        return {
            "id": str(self.id),
            "description": self.description,
            "status": self.status,
            "kind": self.kind,
            "effective_at": self.effective_at.isoformat(),
            "posted_at": self.posted_at.isoformat() if self.posted_at else None,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata,
            "reverses_id": _str_or_none(self.reverses_id),
            "reversed_by_id": _str_or_none(self.reversed_by_id),
            "adjusts_id": _str_or_none(self.adjusts_id),
            "adjusted_by_id": _str_or_none(self.adjusted_by_id),
            "entries": [e.to_json() for e in self.entries],
        }

    def event_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "description": self.description,
            "status": self.status,
            "kind": self.kind,
            "effective_at": self.effective_at.isoformat(),
            "posted_at": self.posted_at.isoformat() if self.posted_at else None,
            "metadata": self.metadata,
            "reverses_id": _str_or_none(self.reverses_id),
            "entries": [e.to_json() for e in self.entries],
        }
