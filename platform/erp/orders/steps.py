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

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from erp.errors import Problem, field_problem
from erp.inventory import services as inventory
from erp.ledger import services as ledger
from erp.orders import steps_queries
from erp.orders.models import (
    Fulfilment,
    FulfilmentLine,
    Order,
    OrderLine,
    Payment,
    Return,
    ReturnLine,
)

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


def units_share(line: OrderLine, before: int, after: int) -> tuple[int, int]:
    """The line's subtotal and tax for its units `before` < u <= `after`: the cumulative
    share less what earlier steps booked, so a whole line books exactly its totals
    (API.md, Steps). Fulfilments count `fulfilled`, returns `returned`."""

    def part(amount: int) -> int:
        return share(amount, after, line.quantity) - share(amount, before, line.quantity)

    return part(line.subtotal), part(line.tax)


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


def _role_account(s: Session, role: str, currency: str) -> uuid.UUID:
    account = ledger.role_account_id(s, role, currency)
    if account is None:
        raise field_problem(
            "validation", "currency", f"No {role} account in {currency} (a ledger role)."
        )
    return account


class _Entries:
    """A step's ledger entries, by role, skipping zero amounts."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.entries: list[ledger.EntryIn] = []

    def add(self, role: str, amount: int, currency: str) -> None:
        if amount:
            self.entries.append(
                ledger.EntryIn(_role_account(self.s, role, currency), amount, currency)
            )

    def add_account(self, account_id: uuid.UUID, amount: int, currency: str) -> None:
        if amount:
            self.entries.append(ledger.EntryIn(account_id, amount, currency))

    def post(
        self, tx_id: uuid.UUID, description: str, metadata: dict[str, Any]
    ) -> uuid.UUID | None:
        """Post them as ONE transaction `tx_id`; None when there is nothing to post."""
        if not self.entries:
            return None
        ledger.post_transaction(
            self.s,
            ledger.PostTransaction(
                description=description, entries=self.entries, metadata=metadata
            ),
            tx_id=tx_id,
        )
        return tx_id


def _sales_entries(
    s: Session, currency: str, base: str, revenue: int, tax: int, cost: int, sign: int
) -> _Entries:
    """A fulfilment's posting (sign 1): Dr accounts_receivable revenue + tax, Cr
    sales_revenue and sales_tax_payable (the order's currency), Dr cost_of_goods_sold,
    Cr inventory at cost (base currency). A return's is its mirror (sign -1)."""
    entries = _Entries(s)
    entries.add("accounts_receivable", sign * (revenue + tax), currency)
    entries.add("sales_revenue", -sign * revenue, currency)
    entries.add("sales_tax_payable", -sign * tax, currency)
    entries.add("cost_of_goods_sold", sign * cost, base)
    entries.add("inventory", -sign * cost, base)
    return entries


def _base_currency(s: Session) -> str:
    cur = inventory.stock_currency(s)
    if cur is None:
        raise field_problem(
            "validation", "currency", "Inventory is not set up (no stock currency)."
        )
    return cur


def _touch(order: Order) -> None:
    order.updated_at = func.now()


# -- fulfil ---------------------------------------------------------------------------


def fulfil_order(s: Session, order_id: uuid.UUID, wanted: Sequence[StepLine]) -> dict[str, Any]:
    """Ship units of an open order (API.md, Steps): consume each line's reservation
    (backordered units from available stock, else 409 `insufficient-stock`
    `lines.<i>.quantity`), `issue` moves at the moving average, and ONE ledger
    transaction: Dr accounts_receivable, Cr sales_revenue and sales_tax_payable (the
    lines' cumulative shares, the shipping with the first fulfilment; order currency),
    Dr cost_of_goods_sold, Cr inventory at cost (base currency). Emits `order.fulfilled`
    (the order plus `fulfilment`). Returns the fulfilment."""
    order = lock_order(s, order_id)
    if order.status not in OPEN_STATUSES:
        raise _not_open(order, "fulfilled")
    lines = order_lines(s, order.id)
    picked = _step_lines(lines, wanted)
    errors: dict[str, list[str]] = {}
    for i, line, q in picked:
        open_n = line.quantity - line.fulfilled - line.cancelled
        if q > open_n:
            errors[f"lines.{i}.quantity"] = [f"{q} requested, {open_n} open."]
    if errors:
        _raise_validation(errors)
    base = _base_currency(s)
    fulfilment_id, tx_id = uuid.uuid4(), uuid.uuid4()

    # (request index, line, units, from the reservation?) in request order
    parts: list[tuple[int, OrderLine, int, bool]] = []
    for i, line, q in picked:
        from_res = min(q, line.quantity - line.fulfilled - line.cancelled - line.backordered)
        if from_res:
            parts.append((i, line, from_res, True))
        if q - from_res:
            parts.append((i, line, q - from_res, False))
    reserved = [p for p in parts if p[3]]
    moved: dict[int, tuple[uuid.UUID, int]] = {}
    if reserved:
        consumed = inventory.consume(
            s,
            inventory.Consume(
                lines=[
                    inventory.ConsumeLine(line.reservation_id, n)  # type: ignore[arg-type]
                    for _, line, n, _ in reserved
                ],
                source_type="fulfilment",
                source_id=fulfilment_id,
                transaction_id=tx_id,
            ),
        )
        by_reservation = {c.reservation_id: c for c in consumed}
        for k, (_, line, _, _) in enumerate(parts):
            if parts[k][3]:
                c = by_reservation[line.reservation_id]  # type: ignore[index]
                moved[k] = (c.move_id, c.value)
    for k, (i, line, n, from_res) in enumerate(parts):
        if not from_res:
            moved[k] = inventory.step_move(
                s,
                kind="issue",
                item_id=line.item_id,
                quantity=n,
                location_id=order.location_id,
                source_type="fulfilment",
                source_id=fulfilment_id,
                transaction_id=tx_id,
                field_prefix=f"lines.{i}.",
            )
            line.backordered -= n

    subtotal = tax = cost = 0
    rows: list[FulfilmentLine] = []
    for k, (_, line, n, _) in enumerate(parts):
        before, after = line.fulfilled, line.fulfilled + n
        sub, tx = units_share(line, before, after)
        move_id, value = moved[k]
        rows.append(
            FulfilmentLine(
                id=uuid.uuid4(),
                fulfilment_id=fulfilment_id,
                order_id=order.id,
                line_no=k,
                line_id=line.id,
                item_id=line.item_id,
                quantity=n,
                cost=value,
                subtotal=sub,
                tax=tx,
                move_id=move_id,
            )
        )
        line.fulfilled = after
        subtotal, tax, cost = subtotal + sub, tax + tx, cost + value
    ship_sub = ship_tax = 0
    if not order.shipping_booked:
        ship_sub, ship_tax = order.shipping_subtotal, order.shipping_tax
        order.shipping_booked = True

    entries = _sales_entries(
        s, order.currency, base, subtotal + ship_sub, tax + ship_tax, cost, sign=1
    )
    posted = entries.post(
        tx_id,
        "Order fulfilment",
        {"order_id": str(order.id), "fulfilment_id": str(fulfilment_id)},
    )
    s.add(
        Fulfilment(
            id=fulfilment_id,
            order_id=order.id,
            subtotal=subtotal,
            tax=tax,
            shipping_subtotal=ship_sub,
            shipping_tax=ship_tax,
            cost=cost,
            transaction_id=posted,
        )
    )
    s.flush()  # the fulfilment before its lines (their foreign key is not deferred)
    s.add_all(rows)
    done = all(ln.fulfilled + ln.cancelled == ln.quantity for ln in lines)
    order.status = "fulfilled" if done else "partially_fulfilled"
    _touch(order)
    view = steps_queries.step_view(s, "fulfilments", fulfilment_id)
    _emit(s, FULFILLED_EVENT, {**order_view(s, order.id), "fulfilment": view})
    return view


# -- pay ------------------------------------------------------------------------------


def _payment_account(s: Session, account_id: uuid.UUID | None, currency: str) -> uuid.UUID:
    if account_id is None:
        return _role_account(s, "cash", currency)
    try:
        account = ledger.get_account(s, account_id)
    except Problem:
        raise field_problem("validation", "account_id", "Unknown account.") from None
    if account.currency != currency:
        raise field_problem("validation", "account_id", f"Must be an account in {currency}.")
    if account.archived:
        raise field_problem("validation", "account_id", "The account is archived.")
    return account.id


def pay_order(
    s: Session,
    order_id: uuid.UUID,
    amount: int,
    method: str,
    account_id: uuid.UUID | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """Record a payment (amount > 0, at most `balance_due`) or a refund (amount < 0, only
    while `balance_due` is negative and at least it), else 422 `errors.amount`: Dr the
    account (default: the `cash` role's), Cr accounts_receivable, in the order's
    currency. Any status. Emits `order.paid` (the order plus `payment`)."""
    order = lock_order(s, order_id)
    due = order.total - order.credited - order.paid
    if amount == 0:
        raise field_problem("validation", "amount", "Must not be 0.")
    if amount > 0 and amount > due:
        raise field_problem(
            "validation", "amount", f"Exceeds the balance due ({due}): no overpayment."
        )
    if amount < 0 and (due >= 0 or amount < due):
        owed = max(0, -due)
        raise field_problem(
            "validation", "amount", f"A refund is at most what the customer is owed ({owed})."
        )
    cur = order.currency
    account = _payment_account(s, account_id, cur)
    payment_id, tx_id = uuid.uuid4(), uuid.uuid4()
    entries = _Entries(s)
    entries.add_account(account, amount, cur)
    entries.add("accounts_receivable", -amount, cur)
    entries.post(
        tx_id,
        "Order refund" if amount < 0 else "Order payment",
        {"order_id": str(order.id), "payment_id": str(payment_id)},
    )
    s.add(
        Payment(
            id=payment_id,
            order_id=order.id,
            amount=amount,
            currency=cur,
            method=method,
            account_id=account,
            reference=reference,
            transaction_id=tx_id,
        )
    )
    order.paid += amount
    _touch(order)
    view = steps_queries.step_view(s, "payments", payment_id)
    _emit(s, PAID_EVENT, {**order_view(s, order.id), "payment": view})
    return view


# -- return ---------------------------------------------------------------------------


def _issued_cost(s: Session, line_id: uuid.UUID) -> int:
    """What the line's fulfilled units cost, less what its returns took back."""
    out = s.scalar(
        select(func.coalesce(func.sum(FulfilmentLine.cost), 0)).where(
            FulfilmentLine.line_id == line_id
        )
    )
    back = s.scalar(
        select(func.coalesce(func.sum(ReturnLine.cost), 0)).where(ReturnLine.line_id == line_id)
    )
    return int(out or 0) - int(back or 0)


def _location_id(s: Session, location_id: uuid.UUID) -> uuid.UUID:
    try:
        inventory.get_location(s, location_id)
    except Problem:
        raise field_problem("validation", "location_id", "Unknown location.") from None
    return location_id


def return_order(
    s: Session,
    order_id: uuid.UUID,
    wanted: Sequence[StepLine],
    restock: bool,
    location_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Take back fulfilled units (none fulfilled: 409 `conflict`; more than fulfilled -
    returned: 422 `lines.<i>.quantity`): a credit note mirroring the fulfilment's
    booking for those units (Dr sales_revenue and sales_tax_payable, Cr
    accounts_receivable, same cumulative rounding over returned units) and, if
    `restock`, `receipt` moves (default: the order's location) at the units' issue cost
    pro rata with Dr inventory, Cr cost_of_goods_sold: ONE transaction. Emits
    `order.returned` (the order plus `return`). Returns the return."""
    order = lock_order(s, order_id)
    lines = order_lines(s, order.id)
    if not any(ln.fulfilled for ln in lines):
        raise Problem(
            "conflict",
            "Nothing of this order was fulfilled: there is nothing to return.",
            errors={"lines": ["No fulfilled units."]},
        )
    picked = _step_lines(lines, wanted)
    errors: dict[str, list[str]] = {}
    for i, line, q in picked:
        back = line.fulfilled - line.returned
        if q > back:
            errors[f"lines.{i}.quantity"] = [f"{q} requested, {back} fulfilled and not returned."]
    if errors:
        _raise_validation(errors)
    if location_id is not None:
        location_id = _location_id(s, location_id)
    elif restock:
        location_id = order.location_id
    base = _base_currency(s)
    return_id, tx_id = uuid.uuid4(), uuid.uuid4()
    subtotal = tax = restocked = 0
    rows: list[ReturnLine] = []
    for k, (i, line, n) in enumerate(picked):
        before, after = line.returned, line.returned + n
        sub, tx = units_share(line, before, after)
        remaining = _issued_cost(s, line.id)
        unit_cost = min(share(remaining, 1, line.fulfilled - line.returned), remaining // n)
        move_id = None
        if restock:
            assert location_id is not None
            move_id, _ = inventory.step_move(
                s,
                kind="receipt",
                item_id=line.item_id,
                quantity=n,
                location_id=location_id,
                unit_cost=unit_cost,
                source_type="return",
                source_id=return_id,
                transaction_id=tx_id,
                field_prefix=f"lines.{i}.",
            )
            restocked += unit_cost * n
        rows.append(
            ReturnLine(
                id=uuid.uuid4(),
                return_id=return_id,
                order_id=order.id,
                line_no=k,
                line_id=line.id,
                item_id=line.item_id,
                quantity=n,
                cost=unit_cost * n,
                subtotal=sub,
                tax=tx,
                move_id=move_id,
            )
        )
        line.returned = after
        subtotal, tax = subtotal + sub, tax + tx
    entries = _sales_entries(s, order.currency, base, subtotal, tax, restocked, sign=-1)
    posted = entries.post(
        tx_id, "Order return", {"order_id": str(order.id), "return_id": str(return_id)}
    )
    s.add(
        Return(
            id=return_id,
            order_id=order.id,
            restock=restock,
            location_id=location_id,
            reason=reason,
            subtotal=subtotal,
            tax=tax,
            cost=restocked,
            transaction_id=posted,
        )
    )
    s.flush()  # the return before its lines (their foreign key is not deferred)
    s.add_all(rows)
    order.credited += subtotal + tax
    _touch(order)
    view = steps_queries.step_view(s, "returns", return_id)
    _emit(s, RETURNED_EVENT, {**order_view(s, order.id), "return": view})
    return view
