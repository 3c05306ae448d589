"""Suppliers and purchase orders (API.md, Inventory: Suppliers, Purchase orders).

Services take the caller's session and never commit. A receipt is one SQL call
(policies/inventory_purchasing.sql, inventory.receive_purchase_order): the moves, the
counters, the status, the receipt, its one ledger posting and the
purchase_order.received event, in one round trip; its refusals are named SQLSTATEs.
Drafts are edited here: they touch no stock and no ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp.db import call_one, pg_array
from erp.errors import Problem, field_problem, refusal
from erp.inventory.models import (
    Item,
    Location,
    PoReceipt,
    PoReceiptLine,
    PurchaseOrder,
    PurchaseOrderLine,
    Settings,
    Supplier,
)
from erp.pagination import paginate

RECEIVED_EVENT = "purchase_order.received"
INT64_MAX = 2**63 - 1

#: Which states each action leaves from, and where it goes (API.md, Purchase orders).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "send": (("draft",), "sent"),
    "cancel": (("draft", "sent"), "cancelled"),
}

# -- commands and views --------------------------------------------------------------


@dataclass(frozen=True)
class NewSupplier:
    name: str
    email: str | None = None
    phone: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class LineIn:
    item_id: uuid.UUID
    quantity: int
    unit_cost: int


@dataclass(frozen=True)
class NewPurchaseOrder:
    supplier_id: uuid.UUID
    lines: list[LineIn]
    location_id: uuid.UUID | None = None
    expected_at: datetime | None = None
    reference: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> NewPurchaseOrder:
        return cls(**{**body, "lines": [LineIn(**ln) for ln in body["lines"]]})


@dataclass(frozen=True)
class ReceiveLine:
    line_id: uuid.UUID
    quantity: int
    location_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Receive:
    purchase_order_id: uuid.UUID
    lines: list[ReceiveLine]
    over_receipt: bool = False

    @classmethod
    def from_body(cls, po_id: uuid.UUID, body: dict[str, Any]) -> Receive:
        lines = [ReceiveLine(**ln) for ln in body["lines"]]
        return cls(po_id, lines, body.get("over_receipt", False))


@dataclass(frozen=True)
class LineView:
    id: uuid.UUID
    item_id: uuid.UUID
    quantity: int
    received: int
    unit_cost: int


@dataclass
class PurchaseOrderView:
    id: uuid.UUID
    supplier_id: uuid.UUID
    status: str
    currency: str
    location_id: uuid.UUID
    reference: str | None
    expected_at: datetime | None
    created_at: datetime
    lines: list[LineView] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(ln.quantity * ln.unit_cost for ln in self.lines)


def _supplier(s: Supplier) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "email": s.email,
        "phone": s.phone,
        "reference": s.reference,
        "archived": s.archived,
        "created_at": s.created_at,
    }


# -- suppliers -----------------------------------------------------------------------


def create_supplier(s: Session, cmd: NewSupplier) -> dict[str, Any]:
    supplier = Supplier(name=cmd.name, email=cmd.email, phone=cmd.phone, reference=cmd.reference)
    s.add(supplier)
    s.flush()
    s.refresh(supplier, ["created_at"])
    return _supplier(supplier)


def _find_supplier(s: Session, supplier_id: uuid.UUID, *, lock: bool = False) -> Supplier:
    stmt = select(Supplier).where(Supplier.id == supplier_id)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    supplier = s.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if supplier is None:
        raise Problem("not-found")
    return supplier


def get_supplier(s: Session, supplier_id: uuid.UUID) -> dict[str, Any]:
    return _supplier(_find_supplier(s, supplier_id))


def update_supplier(s: Session, supplier_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    supplier = _find_supplier(s, supplier_id, lock=True)
    for name in ("name", "email", "phone", "reference", "archived"):
        if name in changes:
            setattr(supplier, name, changes[name])
    s.flush()
    return _supplier(supplier)


def suppliers_page(
    s: Session, include_archived: bool, cursor: str | None, limit: int
) -> dict[str, Any]:
    stmt = select(Supplier)
    if not include_archived:
        stmt = stmt.where(Supplier.archived.is_(False))
    page = paginate(
        s,
        stmt,
        list_name="inventory.suppliers",
        sort=Supplier.created_at,
        id_col=Supplier.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": [_supplier(x) for x in page.items], "next_cursor": page.next_cursor}


# -- purchase orders: drafts ---------------------------------------------------------


def _check_supplier(s: Session, supplier_id: uuid.UUID) -> None:
    archived = s.scalar(select(Supplier.archived).where(Supplier.id == supplier_id))
    if archived is None:
        raise field_problem("validation", "supplier_id", "Unknown supplier.")
    if archived:
        raise field_problem("validation", "supplier_id", "The supplier is archived.")


def _location(s: Session, location_id: uuid.UUID | None) -> uuid.UUID:
    """The location given (in use), else the tenant's default location."""
    if location_id is None:
        default = s.scalar(select(Location.id).where(Location.is_default.is_(True)))
        if default is None:
            raise field_problem("validation", "location_id", "No default location; name one.")
        return default
    archived = s.scalar(select(Location.archived).where(Location.id == location_id))
    if archived is None:
        raise field_problem("validation", "location_id", "Unknown location.")
    if archived:
        raise field_problem("validation", "location_id", "The location is archived.")
    return location_id


def _check_lines(s: Session, lines: list[LineIn]) -> None:
    """Items known and in use; each line's value and the order's total within 64 bits.
    Every line at fault is named."""
    ids = {ln.item_id for ln in lines}
    found: dict[uuid.UUID, bool] = {
        r.id: r.archived for r in s.execute(select(Item.id, Item.archived).where(Item.id.in_(ids)))
    }
    errors: dict[str, list[str]] = {}
    for i, ln in enumerate(lines):
        if ln.item_id not in found:
            errors[f"lines.{i}.item_id"] = ["Unknown item."]
        elif found[ln.item_id]:
            errors[f"lines.{i}.item_id"] = ["The item is archived."]
        if ln.quantity * ln.unit_cost > INT64_MAX:
            errors[f"lines.{i}.unit_cost"] = ["quantity x unit_cost exceeds 9223372036854775807."]
    if errors:
        first = next(iter(errors))
        raise Problem("validation", f"{first}: {errors[first][0]}", errors=errors)
    if sum(ln.quantity * ln.unit_cost for ln in lines) > INT64_MAX:
        raise field_problem("validation", "lines", "The order's total exceeds 9223372036854775807.")


def _insert_lines(s: Session, po_id: uuid.UUID, lines: list[LineIn]) -> None:
    s.add_all(
        PurchaseOrderLine(
            id=uuid.uuid4(),
            purchase_order_id=po_id,
            line_no=i,
            item_id=ln.item_id,
            quantity=ln.quantity,
            unit_cost=ln.unit_cost,
        )
        for i, ln in enumerate(lines)
    )


def create_purchase_order(s: Session, cmd: NewPurchaseOrder) -> PurchaseOrderView:
    currency = s.scalar(select(Settings.currency))
    if currency is None:
        raise Problem("validation", "Inventory is not set up for this tenant.")
    _check_supplier(s, cmd.supplier_id)
    location_id = _location(s, cmd.location_id)
    _check_lines(s, cmd.lines)
    po = PurchaseOrder(
        id=uuid.uuid4(),
        supplier_id=cmd.supplier_id,
        status="draft",
        currency=currency,
        location_id=location_id,
        reference=cmd.reference,
        expected_at=cmd.expected_at,
    )
    s.add(po)
    s.flush()  # the order before its lines (their foreign key)
    _insert_lines(s, po.id, cmd.lines)
    s.flush()
    return get_purchase_order(s, po.id)


def _lock(s: Session, po_id: uuid.UUID) -> PurchaseOrder:
    """The order, locked as a receipt locks it (FOR NO KEY UPDATE): one change at a time."""
    po = s.scalars(
        select(PurchaseOrder)
        .where(PurchaseOrder.id == po_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if po is None:
        raise Problem("not-found")
    return po


def _not_in(po: PurchaseOrder, allowed: Iterable[str], action: str) -> Problem:
    states = " or ".join(allowed)
    return Problem(
        "conflict",
        f"The purchase order is {po.status}; only a {states} order can be {action}.",
        errors={"status": [f"The purchase order is {po.status}."]},
    )


def update_purchase_order(
    s: Session, po_id: uuid.UUID, changes: dict[str, Any]
) -> PurchaseOrderView:
    """PATCH of a draft (API.md): the fields sent; `lines` replaces every line."""
    po = _lock(s, po_id)
    if po.status != "draft":
        raise _not_in(po, ["draft"], "changed")
    if not changes:
        return get_purchase_order(s, po_id)
    if "location_id" in changes:
        po.location_id = _location(s, changes["location_id"])
    if "expected_at" in changes:
        po.expected_at = changes["expected_at"]
    if "reference" in changes:
        po.reference = changes["reference"]
    if "lines" in changes:
        lines = [LineIn(**ln) for ln in changes["lines"]]
        _check_lines(s, lines)
        s.execute(delete(PurchaseOrderLine).where(PurchaseOrderLine.purchase_order_id == po_id))
        _insert_lines(s, po_id, lines)
    po.updated_at = func.now()
    s.flush()
    return get_purchase_order(s, po_id)


def transition(s: Session, po_id: uuid.UUID, action: str) -> PurchaseOrderView:
    """send (draft -> sent) or cancel (draft, sent -> cancelled); any other state 409."""
    allowed, target = TRANSITIONS[action]
    po = _lock(s, po_id)
    if po.status not in allowed:
        raise _not_in(po, allowed, {"send": "sent", "cancel": "cancelled"}[action])
    po.status = target
    po.updated_at = func.now()
    s.flush()
    return get_purchase_order(s, po_id)


# -- purchase orders: reads ----------------------------------------------------------


def _views(s: Session, orders: list[PurchaseOrder]) -> list[PurchaseOrderView]:
    if not orders:
        return []
    lines: dict[uuid.UUID, list[LineView]] = {o.id: [] for o in orders}
    for ln in s.scalars(
        select(PurchaseOrderLine)
        .where(PurchaseOrderLine.purchase_order_id.in_(list(lines)))
        .order_by(PurchaseOrderLine.purchase_order_id, PurchaseOrderLine.line_no)
        .execution_options(populate_existing=True)
    ):
        lines[ln.purchase_order_id].append(
            LineView(ln.id, ln.item_id, ln.quantity, ln.received, ln.unit_cost)
        )
    return [
        PurchaseOrderView(
            id=o.id,
            supplier_id=o.supplier_id,
            status=o.status,
            currency=o.currency,
            location_id=o.location_id,
            reference=o.reference,
            expected_at=o.expected_at,
            created_at=o.created_at,
            lines=lines[o.id],
        )
        for o in orders
    ]


def get_purchase_order(s: Session, po_id: uuid.UUID) -> PurchaseOrderView:
    po = s.scalars(
        select(PurchaseOrder)
        .where(PurchaseOrder.id == po_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if po is None:
        raise Problem("not-found")
    return _views(s, [po])[0]


def purchase_orders_page(
    s: Session,
    supplier_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    stmt = select(PurchaseOrder)
    if supplier_id is not None:
        stmt = stmt.where(PurchaseOrder.supplier_id == supplier_id)
    if status is not None:
        stmt = stmt.where(PurchaseOrder.status == status)
    page = paginate(
        s,
        stmt,
        list_name="inventory.purchase_orders",
        sort=PurchaseOrder.created_at,
        id_col=PurchaseOrder.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": _views(s, page.items), "next_cursor": page.next_cursor}


def _receipt_views(s: Session, receipts: list[PoReceipt]) -> list[dict[str, Any]]:
    lines: dict[uuid.UUID, list[dict[str, Any]]] = {r.id: [] for r in receipts}
    if receipts:
        for ln in s.scalars(
            select(PoReceiptLine)
            .where(PoReceiptLine.receipt_id.in_(list(lines)))
            .order_by(PoReceiptLine.receipt_id, PoReceiptLine.line_no)
        ):
            lines[ln.receipt_id].append(
                {
                    "line_id": ln.line_id,
                    "item_id": ln.item_id,
                    "quantity": ln.quantity,
                    "location_id": ln.location_id,
                    "unit_cost": ln.unit_cost,
                    "move_id": ln.move_id,
                }
            )
    return [
        {
            "id": r.id,
            "purchase_order_id": r.purchase_order_id,
            "lines": lines[r.id],
            "transaction_id": r.transaction_id,
            "created_at": r.created_at,
        }
        for r in receipts
    ]


def receipts_page(s: Session, po_id: uuid.UUID, cursor: str | None, limit: int) -> dict[str, Any]:
    get_purchase_order(s, po_id)  # 404 for an absent or another tenant's order
    page = paginate(
        s,
        select(PoReceipt).where(PoReceipt.purchase_order_id == po_id),
        list_name=f"inventory.po_receipts:{po_id}",
        sort=PoReceipt.created_at,
        id_col=PoReceipt.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": _receipt_views(s, page.items), "next_cursor": page.next_cursor}


# -- receiving -----------------------------------------------------------------------

#: One call, one round trip (policies/inventory_purchasing.sql).
_RECEIVE = """
    SELECT inventory.receive_purchase_order(
        %(po_id)s, %(receipt_id)s, %(line_ids)s::uuid[], %(quantities)s::bigint[],
        %(locations)s::uuid[], %(move_ids)s::uuid[], %(receipt_line_ids)s::uuid[],
        %(over_receipt)s, %(tx_id)s, %(tx_event_id)s, %(event_id)s)
"""


def _nullable_uuids(values: Iterable[uuid.UUID | None]) -> str:
    """A uuid[] literal that may hold NULLs (erp.db.pg_array takes no None)."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def receive(s: Session, cmd: Receive) -> dict[str, Any]:
    """Receive lines of a sent or partially received order; the receipt as the API
    answers it (built by the database, which alone knows the move values, the status
    and the times)."""
    n = len(cmd.lines)
    params = {
        "po_id": cmd.purchase_order_id,
        "receipt_id": uuid.uuid4(),
        "line_ids": pg_array(ln.line_id for ln in cmd.lines),
        "quantities": pg_array(ln.quantity for ln in cmd.lines),
        "locations": _nullable_uuids(ln.location_id for ln in cmd.lines),
        "move_ids": pg_array(uuid.uuid4() for _ in range(n)),
        "receipt_line_ids": pg_array(uuid.uuid4() for _ in range(n)),
        "over_receipt": cmd.over_receipt,
        "tx_id": uuid.uuid4(),
        "tx_event_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
    }
    try:
        (receipt,) = call_one(s, _RECEIVE, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise
    return receipt if isinstance(receipt, dict) else dict(json.loads(receipt))
