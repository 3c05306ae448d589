"""The posting route builds its reply itself (TransactionView.to_json): it must be what
the documented schema (TransactionOut) dumps, field for field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from erp.ledger.commands import EntryView, TransactionView
from erp.ledger.schemas import TransactionOut


def _view(**changes: Any) -> TransactionView:
    at = datetime(2026, 3, 1, 12, 30, 0, 120, tzinfo=UTC)
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "description": 'Ünïcode \u2028 "quoted"',
        "status": "posted",
        "kind": "standard",
        "effective_at": at,
        "posted_at": at + timedelta(seconds=1),
        "created_at": at,
        "metadata": {"order": "A-1", "nested": {"n": 1}},
        "reverses_id": None,
        "reversed_by_id": None,
        "adjusts_id": None,
        "adjusted_by_id": None,
        "entries": [
            EntryView(uuid.uuid4(), uuid.uuid4(), 1500, "USD"),
            EntryView(uuid.uuid4(), uuid.uuid4(), -1500, "USD"),
        ],
    }
    return TransactionView(**{**base, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status": "pending", "posted_at": None, "metadata": {}},
        {"kind": "reversal", "reverses_id": uuid.uuid4(), "reversed_by_id": uuid.uuid4()},
        {"adjusts_id": uuid.uuid4(), "adjusted_by_id": uuid.uuid4()},
        {"effective_at": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-5)))},
    ],
)
def test_to_json_is_the_schemas_dump(changes: dict[str, Any]) -> None:
    view = _view(**changes)
    assert view.to_json() == TransactionOut().dump(view)
