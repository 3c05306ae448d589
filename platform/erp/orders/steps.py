"""An order's steps after placing (API.md, Orders: Steps): cancel, fulfil, pay, return.
The rules, no Flask; services take the caller's session and never commit.

Each step is ONE database transaction with its stock moves, its one ledger transaction
and its event: the caller's unit of work, which rolls back whole on any refusal.

LOCK ORDER: the order row first (`SELECT ... FOR UPDATE`: two steps on one order run
one after the other, so units are never fulfilled, returned or paid twice), then what
the inventory functions lock (items by id, then reservations and levels). Placement
never locks an existing order, so steps and placements do not deadlock.

ROUNDING (docs/orders.md): a line's amounts x (subtotal, tax) are booked by cumulative
share, `round_half_up(x * units so far / quantity)` less what earlier steps booked, so
that a whole line books exactly its totals; returns credit the same way over returned
units. The order's totals count each line's non-cancelled share the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp.errors import Problem, field_problem
from erp.inventory import services as inventory
from erp.orders.models import Order, OrderLine

CANCELLED_EVENT = "order.cancelled"
FULFILLED_EVENT = "order.fulfilled"
PAID_EVENT = "order.paid"
RETURNED_EVENT = "order.returned"
STEP_EVENTS = (CANCELLED_EVENT, FULFILLED_EVENT, PAID_EVENT, RETURNED_EVENT)

OPEN_STATUSES = ("confirmed", "partially_fulfilled")

_ORDER_JSON = text("SELECT orders.order_json(:id)::text")


def share(amount: int, units: int, quantity: int) -> int:
    """round_half_up(amount * units / quantity) in integers, for amount, units >= 0."""
    if quantity <= 0:
        return 0
    return (2 * amount * units + quantity) // (2 * quantity)


def _emit(s: Session, event_type: str, payload: dict[str, Any]) -> None:
    from erp.webhooks import services as outbox

    outbox.emit(s, event_type, payload)


def order_view(s: Session, order_id: uuid.UUID) -> dict[str, Any]:
    """The order as GET /orders/{id} answers it (orders.order_json)."""
    s.flush()
    body = s.execute(_ORDER_JSON, {"id": order_id}).scalar_one()
    if body is None:
        raise Problem("not-found")
    data: dict[str, Any] = json.loads(body)
    return data


def lock_order(s: Session, order_id: uuid.UUID) -> Order:
    """The order, locked for this transaction's step (another tenant's: 404)."""
    order = s.scalar(select(Order).where(Order.id == order_id).with_for_update())
    if order is None:
        raise Problem("not-found")
    return order


def order_lines(s: Session, order_id: uuid.UUID) -> list[OrderLine]:
    return list(
        s.scalars(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_no)
        )
    )


def _not_open(order: Order, action: str) -> Problem:
    return Problem(
        "conflict",
        f"The order is {order.status}: only a confirmed or partially fulfilled order can be "
        f"{action}.",
        errors={"status": [f"The order is {order.status}."]},
    )


def recompute_totals(order: Order, lines: Sequence[OrderLine]) -> None:
    """The order's subtotal, tax and total: each line's non-cancelled share (API.md), and
    the shipping unless the order was cancelled before it was booked."""
    subtotal = sum(share(ln.subtotal, ln.quantity - ln.cancelled, ln.quantity) for ln in lines)
    tax = sum(share(ln.tax, ln.quantity - ln.cancelled, ln.quantity) for ln in lines)
    if order.status != "cancelled" or order.shipping_booked:
        subtotal += order.shipping_subtotal
        tax += order.shipping_tax
    order.subtotal, order.tax, order.total = subtotal, tax, subtotal + tax


# -- cancel ---------------------------------------------------------------------------


def cancel_order(s: Session, order_id: uuid.UUID, reason: str | None) -> dict[str, Any]:
    """Cancel a confirmed or partially fulfilled order (else 409 `conflict`): release the
    reservations of its open units through the inventory service, mark every line's open
    quantity `cancelled`, recompute the totals, emit `order.cancelled` (the order).
    Returns the order as GET answers it. The shops' `orders/cancelled` topic calls this."""
    order = lock_order(s, order_id)
    if order.status not in OPEN_STATUSES:
        raise _not_open(order, "cancelled")
    lines = order_lines(s, order.id)
    held = [
        ln.reservation_id
        for ln in lines
        if ln.reservation_id is not None
        and ln.quantity - ln.fulfilled - ln.cancelled - ln.backordered > 0
    ]
    if held:
        inventory.release(s, held, order_id=order.id)
    for ln in lines:
        ln.cancelled += ln.quantity - ln.fulfilled - ln.cancelled
        ln.backordered = 0
    order.status = "cancelled"
    order.cancel_reason = reason
    recompute_totals(order, lines)
    view = order_view(s, order.id)
    _emit(s, CANCELLED_EVENT, view)
    return view


@dataclass(frozen=True)
class StepLine:
    """One `{line_id, quantity}` of a fulfilment or a return."""

    line_id: uuid.UUID
    quantity: int


def _step_lines(
    lines: Sequence[OrderLine], wanted: Sequence[StepLine]
) -> list[tuple[int, OrderLine, int]]:
    """(index in the request, the order line, quantity); unknown or repeated lines: 422."""
    by_id = {ln.id: ln for ln in lines}
    errors: dict[str, list[str]] = {}
    seen: set[uuid.UUID] = set()
    out = []
    for i, w in enumerate(wanted):
        line = by_id.get(w.line_id)
        if line is None:
            errors[f"lines.{i}.line_id"] = ["Not a line of this order."]
        elif w.line_id in seen:
            errors[f"lines.{i}.line_id"] = ["Listed twice."]
        else:
            seen.add(w.line_id)
            out.append((i, line, w.quantity))
    if errors:
        _raise_validation(errors)
    return out


def _raise_validation(errors: dict[str, list[str]]) -> None:
    first = next(iter(errors))
    detail = f"{first}: {errors[first][0]}" if len(errors) == 1 else "The step failed validation."
    raise Problem("validation", detail, errors=errors)


def _no_field_problem(field: str, message: str) -> Problem:
    return field_problem("validation", field, message)
