"""Inventory's rules. Services take the caller's session and never commit.

Stock changes are SQL function calls (policies/inventory*.sql): `inventory.record_move`
applies a move (`inventory.apply_move`: checks, locks, one conditional statement per
level, the moving-average value) and posts its value by ledger role
(`inventory.post_value`) in one round trip; refusals are named SQLSTATEs (EI001
insufficient-stock, EI002 validation) that become per-field problems. The stock events
(stock.changed, stock.low) are written at commit by the level-change trigger.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from erp.db import call_one
from erp.errors import Problem, field_problem, refusal
from erp.inventory import queries
from erp.inventory.commands import (
    ItemView,
    LocationView,
    MoveView,
    NewItem,
    NewLocation,
    NewMove,
)
from erp.inventory.models import PARENT_KINDS, Item, Location, StockLevel
from erp.ledger import services as ledger

CHANGED_EVENT = "stock.changed"
LOW_EVENT = "stock.low"

# -- items ------------------------------------------------------------------------------


def create_item(s: Session, cmd: NewItem) -> ItemView:
    item = Item(
        id=uuid.uuid4(),
        sku=cmd.sku,
        name=cmd.name,
        unit=cmd.unit,
        reorder_point=cmd.reorder_point,
    )
    s.add(item)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:  # the SKU is taken (or was, by a concurrent create)
        raise Problem(
            "conflict", f"An item with SKU {cmd.sku!r} exists.", errors={"sku": ["Already used."]}
        ) from exc
    s.refresh(item)
    return queries.item_views(s, [item])[0]


def _item(s: Session, item_id: uuid.UUID, lock: bool = False) -> Item:
    stmt = select(Item).where(Item.id == item_id)
    item = s.scalar(stmt.with_for_update(key_share=False) if lock else stmt)
    if item is None:
        raise Problem("not-found")
    return item


def get_item(s: Session, item_id: uuid.UUID) -> ItemView:
    return queries.item_views(s, [_item(s, item_id)])[0]


def update_item(s: Session, item_id: uuid.UUID, changes: dict[str, Any]) -> ItemView:
    """PATCH: only the fields sent. An item with stock may be archived (it keeps its
    history and takes no new moves); its reorder point takes effect at the next change."""
    item = _item(s, item_id, lock=bool(changes))
    for key in ("name", "reorder_point", "archived"):
        if key in changes:
            setattr(item, key, changes[key])
    if "reorder_point" in changes and changes["reorder_point"] is None:
        item.low = False  # no reorder point: nothing to cross, re-armed for a new one
    s.flush()
    return queries.item_views(s, [item])[0]


# -- locations --------------------------------------------------------------------------


def _location(s: Session, location_id: uuid.UUID, lock: bool = False) -> Location:
    stmt = select(Location).where(Location.id == location_id)
    loc = s.scalar(stmt.with_for_update() if lock else stmt)
    if loc is None:
        raise Problem("not-found")
    return loc


def _parent_kind(s: Session, cmd: NewLocation) -> str | None:
    if cmd.kind == "warehouse":
        if cmd.parent_id is not None:
            raise field_problem("validation", "parent_id", "A warehouse has no parent.")
        return None
    allowed = PARENT_KINDS[cmd.kind]
    wanted = " or ".join(allowed)
    if cmd.parent_id is None:
        raise field_problem("validation", "parent_id", f"A {cmd.kind} needs a {wanted} parent.")
    parent = s.get(Location, cmd.parent_id)
    if parent is None:
        raise field_problem("validation", "parent_id", "Unknown location.")
    if parent.archived:
        raise field_problem("validation", "parent_id", "The location is archived.")
    if parent.kind not in allowed:
        raise field_problem(
            "validation", "parent_id", f"A {cmd.kind}'s parent is a {wanted}, not a {parent.kind}."
        )
    return parent.kind


def create_location(s: Session, cmd: NewLocation) -> LocationView:
    loc = Location(
        id=uuid.uuid4(),
        code=cmd.code,
        name=cmd.name,
        kind=cmd.kind,
        parent_id=cmd.parent_id,
        parent_kind=_parent_kind(s, cmd),
        allow_negative=cmd.allow_negative,
    )
    s.add(loc)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:
        raise Problem(
            "conflict",
            f"A location with code {cmd.code!r} exists.",
            errors={"code": ["Already used."]},
        ) from exc
    s.refresh(loc)
    return queries.location_view(loc)


def get_location(s: Session, location_id: uuid.UUID) -> LocationView:
    return queries.location_view(_location(s, location_id))


def _holds_stock(s: Session, location_id: uuid.UUID) -> bool:
    return bool(
        s.scalar(
            select(func.count())
            .select_from(StockLevel)
            .where(
                StockLevel.location_id == location_id,
                (StockLevel.on_hand != 0) | (StockLevel.reserved != 0),
            )
        )
    )


def update_location(s: Session, location_id: uuid.UUID, changes: dict[str, Any]) -> LocationView:
    """PATCH: name, allow_negative, default (true moves the flag), archived. The default
    location and one holding stock cannot be archived (409)."""
    loc = _location(s, location_id, lock=bool(changes))
    if changes.get("default") is False and loc.is_default:
        raise field_problem("validation", "default", "Make another location the default instead.")
    if changes.get("archived"):
        if loc.is_default or changes.get("default"):
            raise Problem("conflict", "The default location cannot be archived.")
        if _holds_stock(s, loc.id):
            raise Problem("conflict", "The location holds stock; move it out first.")
    if changes.get("default") and not loc.is_default:
        if loc.archived and changes.get("archived") is not False:
            raise Problem("conflict", "An archived location cannot be the default.")
        s.execute(update(Location).where(Location.is_default).values(is_default=False))
        loc.is_default = True
    for key in ("name", "allow_negative", "archived"):
        if key in changes:
            setattr(loc, key, changes[key])
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:  # a concurrent change of the default
        raise Problem("conflict", "The default location changed meanwhile; retry.") from exc
    return queries.location_view(loc)


# -- moves ------------------------------------------------------------------------------

_RECORD = """
    SELECT value, transaction_id, currency, created_at FROM inventory.record_move(
        %(id)s, %(kind)s, %(item_id)s, %(quantity)s, %(from)s, %(to)s, %(unit_cost)s,
        %(reason_code)s, %(reason)s, %(reference)s, %(counter)s, %(tx)s, %(event)s)
"""


def record_move(s: Session, cmd: NewMove) -> MoveView:
    """A direct move, and its posting (API.md's table), in one call."""
    move_id = uuid.uuid4()
    params = {
        "id": move_id,
        "kind": cmd.kind,
        "item_id": cmd.item_id,
        "quantity": cmd.quantity,
        "from": cmd.from_location_id,
        "to": cmd.to_location_id,
        "unit_cost": cmd.unit_cost,
        "reason_code": cmd.reason_code,
        "reason": cmd.reason,
        "reference": cmd.reference,
        "counter": cmd.counter_account_id,
        "tx": uuid.uuid4(),
        "event": uuid.uuid4(),
    }
    try:
        value, tx_id, cur, created_at = call_one(s, _RECORD, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise
    return MoveView(
        id=move_id,
        kind=cmd.kind,
        item_id=cmd.item_id,
        quantity=cmd.quantity,
        from_location_id=cmd.from_location_id,
        to_location_id=cmd.to_location_id,
        unit_cost=cmd.unit_cost,
        value=value,
        currency=cur,
        reason_code=cmd.reason_code,
        reason=cmd.reason,
        reference=cmd.reference,
        source_type=None,
        source_id=None,
        transaction_id=tx_id,
        created_at=created_at,
    )


_STEP_MOVE = """
    SELECT value FROM inventory.apply_move(
        %(id)s, %(kind)s, %(item_id)s, %(quantity)s, %(from)s, %(to)s, %(unit_cost)s,
        NULL, NULL, NULL, %(source_type)s, %(source_id)s, %(tx)s, 0, %(prefix)s, 'quantity')
"""


def step_move(
    s: Session,
    *,
    kind: str,
    item_id: uuid.UUID,
    quantity: int,
    location_id: uuid.UUID,
    source_type: str,
    source_id: uuid.UUID,
    transaction_id: uuid.UUID,
    unit_cost: int | None = None,
    field_prefix: str = "",
) -> tuple[uuid.UUID, int]:
    """An order step's move (`issue` from available stock, or a return's `receipt` at
    `unit_cost`), NOT posted: it returns (move id, value) and the step posts the value
    in its one combined transaction, `transaction_id`, in this database transaction.
    Short stock: 409 `insufficient-stock` naming `<field_prefix>quantity`."""
    move_id = uuid.uuid4()
    params = {
        "id": move_id,
        "kind": kind,
        "item_id": item_id,
        "quantity": quantity,
        "from": location_id if kind == "issue" else None,
        "to": location_id if kind == "receipt" else None,
        "unit_cost": unit_cost,
        "source_type": source_type,
        "source_id": source_id,
        "tx": transaction_id,
        "prefix": field_prefix,
    }
    try:
        (value,) = call_one(s, _STEP_MOVE, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise
    return move_id, int(value)


def stock_currency(s: Session) -> str | None:
    """The tenant's stock (base) currency; None before inventory is provisioned."""
    return queries.currency(s)


# -- valuation --------------------------------------------------------------------------


def valuation(s: Session, as_of: datetime | None = None) -> dict[str, Any]:
    """Item values now; `ledger_balance` is the `inventory` role account's posted balance
    (null without one). They are equal unless that account was posted to directly."""
    when, rows = queries.valuation_rows(s)
    cur = queries.currency(s)
    balance = ledger.role_balance(s, "inventory", cur, when) if cur else None
    return {
        "as_of": when,
        "currency": cur,
        "rows": rows,
        "total": sum(r["value"] for r in rows),
        "ledger_balance": balance,
    }


# -- reservations: the order pipeline's entry points (erp/inventory/reservations.py) ----
# Re-exported here because another domain imports a domain's `services` only.

from erp.inventory.reservation_commands import Consume as Consume  # noqa: E402
from erp.inventory.reservation_commands import ConsumedLine as ConsumedLine  # noqa: E402
from erp.inventory.reservation_commands import ConsumeLine as ConsumeLine  # noqa: E402
from erp.inventory.reservation_commands import ReservationView as ReservationView  # noqa: E402
from erp.inventory.reservation_commands import Reserve as Reserve  # noqa: E402
from erp.inventory.reservation_commands import ReserveLine as ReserveLine  # noqa: E402
from erp.inventory.reservations import consume as consume  # noqa: E402
from erp.inventory.reservations import release as release  # noqa: E402
from erp.inventory.reservations import reserve as reserve  # noqa: E402
