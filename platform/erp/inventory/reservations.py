"""Reservations: hold available stock for order lines (or a manual purpose), release it,
consume it on shipment (API.md, Inventory: Reservations; Orders: placing, steps).

Each command is ONE SQL function call (policies/inventory_reservations.sql): PostgreSQL
checks, locks and writes in one round trip and refuses with named SQLSTATEs (EI001
insufficient-stock naming every short line, EI002 validation, EI003 conflict, EI010
not-found) that become the Problem its callers expect. Services take the caller's
session and never commit; the order pipeline calls `reserve`, `release` and `consume`
(through `erp.inventory.services`) inside its own unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp.db import call_one, pg_array
from erp.errors import Problem, refusal
from erp.inventory.models import Reservation
from erp.inventory.reservation_commands import (
    Consume,
    ConsumedLine,
    ReservationView,
    Reserve,
    ReserveLine,
)
from erp.pagination import Page, paginate

#: The reservation list's filters (API.md): query parameter -> column.
LIST_FILTERS = ("item_id", "location_id", "order_id", "status")

_RESERVE = """
    SELECT inventory.reserve(
        %(ids)s::uuid[], %(items)s::uuid[], %(locations)s::uuid[], %(quantities)s::bigint[],
        %(order_id)s, %(order_line_ids)s::uuid[], %(references)s::text[], %(single)s)
"""

_RELEASE = """
    SELECT coalesce(json_agg(r ORDER BY r.id), '[]') FROM inventory.release_reservations(
        %(ids)s::uuid[], %(order_id)s) AS r
"""

_CONSUME = """
    SELECT coalesce(json_agg(c ORDER BY c.line), '[]') FROM inventory.consume_reservations(
        %(ids)s::uuid[], %(quantities)s::bigint[], %(move_ids)s::uuid[], %(source_type)s,
        %(source_id)s, %(transaction_id)s) AS c
"""


def _call(s: Session, statement: str, params: dict[str, Any]) -> Any:
    try:
        return call_one(s, statement, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise  # retried (40001/40P01) or mapped by the core


def _uuids_or_null(values: Sequence[uuid.UUID | None]) -> str | None:
    if all(v is None for v in values):
        return None
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


# -- reserve --------------------------------------------------------------------------


def reserve(s: Session, cmd: Reserve) -> list[ReservationView]:
    """Reserve every line or none (one call). Short: `insufficient-stock` (409) whose
    `errors` name every short line (`lines.<i>.quantity`); unknown, another tenant's or
    archived items and locations: `validation` (422) naming `lines.<i>.item_id` or
    `lines.<i>.location_id`. Lines naming the same item and location are held together."""
    return _reserve(s, cmd, single=False)


def reserve_one(s: Session, line: ReserveLine) -> ReservationView:
    """One line (POST /inventory/reservations): refusals name `quantity`, `item_id`..."""
    return _reserve(s, Reserve(lines=[line]), single=True)[0]


def _reserve(s: Session, cmd: Reserve, *, single: bool) -> list[ReservationView]:
    lines = list(cmd.lines)
    views = [
        ReservationView(
            id=uuid.uuid4(),
            item_id=line.item_id,
            location_id=line.location_id,
            quantity=line.quantity,
            consumed=0,
            status="held",
            order_id=cmd.order_id,
            order_line_id=line.order_line_id,
            reference=line.reference,
            created_at=None,
        )
        for line in lines
    ]
    if any(line.order_line_id is not None for line in lines) and cmd.order_id is None:
        raise ValueError("order_line_id needs the order_id")
    references = [line.reference for line in lines]
    params = {
        "ids": pg_array(v.id for v in views),
        "items": pg_array(line.item_id for line in lines),
        "locations": pg_array(line.location_id for line in lines),
        "quantities": pg_array(line.quantity for line in lines),
        "order_id": cmd.order_id,
        "order_line_ids": _uuids_or_null([line.order_line_id for line in lines]),
        "references": None if all(r is None for r in references) else references,
        "single": single,
    }
    (created_at,) = _call(s, _RESERVE, params)
    for view in views:
        view.created_at = created_at
    return views


# -- release --------------------------------------------------------------------------


def release(
    s: Session, reservation_ids: Iterable[uuid.UUID], *, order_id: uuid.UUID | None = None
) -> list[ReservationView]:
    """Release held reservations (one call): each frees `quantity - consumed`.

    Without `order_id` (a direct release) an order's reservation is refused with 409
    (cancel the order); with it, every reservation must be that order's (else
    not-found), which is how cancelling an order releases its open units. A reservation
    not held: 409 `conflict` naming its status. Unknown: 404 `not-found`."""
    ids = sorted(set(reservation_ids))
    if not ids:
        return []
    (rows,) = _call(s, _RELEASE, {"ids": pg_array(ids), "order_id": order_id})
    return [ReservationView.from_json(row) for row in rows]


def release_one(s: Session, reservation_id: uuid.UUID) -> ReservationView:
    return release(s, [reservation_id])[0]


# -- consume --------------------------------------------------------------------------


def consume(s: Session, cmd: Consume) -> list[ConsumedLine]:
    """Consume reserved units on shipment (one call, nothing posted): per line the
    reservation's `consumed` grows and an `issue` move takes the units out of on_hand
    and reserved together. Each line's `value` (its cost at the moving average) is
    returned for the caller's one combined ledger transaction, `cmd.transaction_id`,
    which it must post in the same database transaction (the moves reference it)."""
    lines = list(cmd.lines)
    move_ids = [uuid.uuid4() for _ in lines]
    params = {
        "ids": pg_array(line.reservation_id for line in lines),
        "quantities": pg_array(line.quantity for line in lines),
        "move_ids": pg_array(move_ids),
        "source_type": cmd.source_type,
        "source_id": cmd.source_id,
        "transaction_id": cmd.transaction_id,
    }
    (rows,) = _call(s, _CONSUME, params)
    return [
        ConsumedLine(
            reservation_id=lines[row["line"]].reservation_id,
            move_id=uuid.UUID(row["move_id"]),
            item_id=uuid.UUID(row["item_id"]),
            location_id=uuid.UUID(row["location_id"]),
            quantity=lines[row["line"]].quantity,
            value=int(row["value"]),
        )
        for row in rows
    ]


# -- reads ----------------------------------------------------------------------------


def get_reservation(s: Session, reservation_id: uuid.UUID) -> ReservationView:
    row = s.get(Reservation, reservation_id)
    if row is None:
        raise Problem("not-found")
    return ReservationView.from_row(row)


def reservations_page(
    s: Session, filters: dict[str, Any], cursor: str | None, limit: int
) -> Page[ReservationView]:
    stmt = select(Reservation)
    for name in LIST_FILTERS:
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(Reservation, name) == filters[name])
    page = paginate(
        s,
        stmt,
        list_name="inventory.reservations",
        sort=Reservation.created_at,
        id_col=Reservation.id,
        cursor=cursor,
        limit=limit,
    )
    return Page([ReservationView.from_row(r) for r in page.items], page.next_cursor)
