"""Cycle counts (API.md, Inventory: Counts).

A count is one SQL call (policies/inventory_purchasing.sql, inventory.count_stock): it
locks the items, reads what is on hand, refuses a count below what is reserved, makes
one `adjustment` move (reason_code `count`) per non-zero difference, posts their value
in one ledger transaction and records the count, in one round trip. Services never
commit.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp.db import call_one, pg_array
from erp.errors import Problem, refusal
from erp.inventory.models import Count, CountLine
from erp.pagination import paginate


@dataclass(frozen=True)
class CountLineIn:
    item_id: uuid.UUID
    counted: int


@dataclass(frozen=True)
class NewCount:
    location_id: uuid.UUID
    lines: list[CountLineIn]
    reason: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> NewCount:
        lines = [CountLineIn(**ln) for ln in body["lines"]]
        return cls(body["location_id"], lines, body.get("reason"))


_COUNT = """
    SELECT inventory.count_stock(
        %(id)s, %(location_id)s, %(reason)s, %(items)s::uuid[], %(counted)s::bigint[],
        %(move_ids)s::uuid[], %(line_ids)s::uuid[], %(tx_id)s, %(tx_event_id)s)
"""


def count(s: Session, cmd: NewCount) -> dict[str, Any]:
    """Record a count; the count as the API answers it, built by the database (which
    alone knows what was on hand)."""
    n = len(cmd.lines)
    params = {
        "id": uuid.uuid4(),
        "location_id": cmd.location_id,
        "reason": cmd.reason,
        "items": pg_array(ln.item_id for ln in cmd.lines),
        "counted": pg_array(ln.counted for ln in cmd.lines),
        "move_ids": pg_array(uuid.uuid4() for _ in range(n)),
        "line_ids": pg_array(uuid.uuid4() for _ in range(n)),
        "tx_id": uuid.uuid4(),
        "tx_event_id": uuid.uuid4(),
    }
    try:
        (result,) = call_one(s, _COUNT, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise
    return result if isinstance(result, dict) else dict(json.loads(result))


def _views(s: Session, counts: list[Count]) -> list[dict[str, Any]]:
    lines: dict[uuid.UUID, list[dict[str, Any]]] = {c.id: [] for c in counts}
    if counts:
        for ln in s.scalars(
            select(CountLine)
            .where(CountLine.count_id.in_(list(lines)))
            .order_by(CountLine.count_id, CountLine.line_no)
        ):
            lines[ln.count_id].append(
                {
                    "item_id": ln.item_id,
                    "expected": ln.expected,
                    "counted": ln.counted,
                    "difference": ln.difference,
                    "move_id": ln.move_id,
                }
            )
    return [
        {
            "id": c.id,
            "location_id": c.location_id,
            "reason": c.reason,
            "lines": lines[c.id],
            "created_at": c.created_at,
        }
        for c in counts
    ]


def get_count(s: Session, count_id: uuid.UUID) -> dict[str, Any]:
    found = s.get(Count, count_id)
    if found is None:
        raise Problem("not-found")
    return _views(s, [found])[0]


def counts_page(s: Session, cursor: str | None, limit: int) -> dict[str, Any]:
    page = paginate(
        s,
        select(Count),
        list_name="inventory.counts",
        sort=Count.created_at,
        id_col=Count.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": _views(s, page.items), "next_cursor": page.next_cursor}
