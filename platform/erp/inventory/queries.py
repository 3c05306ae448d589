"""Inventory reads: items with their totals, locations, levels, moves, valuation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.inventory.commands import ItemView, LevelView, LocationView, MoveView
from erp.inventory.models import Item, Location, Settings, StockLevel, StockMove
from erp.pagination import Page, paginate


def currency(s: Session) -> str | None:
    """The tenant's stock currency (its base currency), once inventory is provisioned."""
    return s.scalar(select(Settings.currency))


def _available() -> Any:
    return (
        select(func.coalesce(func.sum(StockLevel.on_hand - StockLevel.reserved), 0))
        .where(StockLevel.item_id == Item.id)
        .scalar_subquery()
    )


def item_views(s: Session, items: list[Item]) -> list[ItemView]:
    totals: dict[uuid.UUID, tuple[int, int]] = {}
    if items:
        rows = s.execute(
            select(
                StockLevel.item_id,
                func.sum(StockLevel.on_hand),
                func.sum(StockLevel.reserved),
            )
            .where(StockLevel.item_id.in_([i.id for i in items]))
            .group_by(StockLevel.item_id)
        )
        totals = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    cur = currency(s)
    return [
        ItemView(
            id=i.id,
            sku=i.sku,
            name=i.name,
            unit=i.unit,
            reorder_point=i.reorder_point,
            archived=i.archived,
            on_hand=totals.get(i.id, (0, 0))[0],
            reserved=totals.get(i.id, (0, 0))[1],
            value=i.value,
            currency=cur,
            created_at=i.created_at,
        )
        for i in items
    ]


def items_page(
    s: Session,
    sku: str | None,
    low: bool | None,
    include_archived: bool,
    cursor: str | None,
    limit: int,
) -> Page[ItemView]:
    stmt: Select[Any] = select(Item)
    if sku is not None:
        stmt = stmt.where(Item.sku == sku)
    if not include_archived:
        stmt = stmt.where(Item.archived.is_(False))
    if low is not None:
        below = Item.reorder_point.is_not(None) & (_available() < Item.reorder_point)
        stmt = stmt.where(below if low else ~below)
    page = paginate(
        s,
        stmt,
        list_name="inventory.items",
        sort=Item.created_at,
        id_col=Item.id,
        cursor=cursor,
        limit=limit,
    )
    return Page(item_views(s, page.items), page.next_cursor)


def location_view(loc: Location) -> LocationView:
    return LocationView(
        id=loc.id,
        code=loc.code,
        name=loc.name,
        kind=loc.kind,
        parent_id=loc.parent_id,
        allow_negative=loc.allow_negative,
        default=loc.is_default,
        archived=loc.archived,
        created_at=loc.created_at,
    )


def locations_page(
    s: Session,
    kind: str | None,
    parent_id: uuid.UUID | None,
    include_archived: bool,
    cursor: str | None,
    limit: int,
) -> Page[LocationView]:
    stmt: Select[Any] = select(Location)
    if kind is not None:
        stmt = stmt.where(Location.kind == kind)
    if parent_id is not None:
        stmt = stmt.where(Location.parent_id == parent_id)
    if not include_archived:
        stmt = stmt.where(Location.archived.is_(False))
    page = paginate(
        s,
        stmt,
        list_name="inventory.locations",
        sort=Location.created_at,
        id_col=Location.id,
        cursor=cursor,
        limit=limit,
    )
    return Page([location_view(x) for x in page.items], page.next_cursor)


def levels_page(
    s: Session,
    item_id: uuid.UUID | None,
    location_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[LevelView]:
    stmt: Select[Any] = select(StockLevel)
    if item_id is not None:
        stmt = stmt.where(StockLevel.item_id == item_id)
    if location_id is not None:
        stmt = stmt.where(StockLevel.location_id == location_id)
    page = paginate(
        s,
        stmt,
        list_name="inventory.stock",
        sort=StockLevel.created_at,
        id_col=StockLevel.id,
        cursor=cursor,
        limit=limit,
    )
    ids = {lvl.item_id for lvl in page.items}
    skus = {r[0]: r[1] for r in s.execute(select(Item.id, Item.sku).where(Item.id.in_(ids)))}
    views = [
        LevelView(
            item_id=lvl.item_id,
            sku=skus[lvl.item_id],
            location_id=lvl.location_id,
            on_hand=lvl.on_hand,
            reserved=lvl.reserved,
            updated_at=lvl.updated_at,
        )
        for lvl in page.items
    ]
    return Page(views, page.next_cursor)


def move_view(m: StockMove, cur: str | None) -> MoveView:
    return MoveView(
        id=m.id,
        kind=m.kind,
        item_id=m.item_id,
        quantity=m.quantity,
        from_location_id=m.from_location_id,
        to_location_id=m.to_location_id,
        unit_cost=m.unit_cost,
        value=m.value,
        currency=cur,
        reason_code=m.reason_code,
        reason=m.reason,
        reference=m.reference,
        source_type=m.source_type,
        source_id=m.source_id,
        transaction_id=m.transaction_id,
        created_at=m.created_at,
    )


def get_move(s: Session, move_id: uuid.UUID) -> MoveView:
    move = s.get(StockMove, move_id)
    if move is None:
        raise Problem("not-found")
    return move_view(move, currency(s))


def moves_page(
    s: Session,
    item_id: uuid.UUID | None,
    location_id: uuid.UUID | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> Page[MoveView]:
    stmt: Select[Any] = select(StockMove)
    if item_id is not None:
        stmt = stmt.where(StockMove.item_id == item_id)
    if location_id is not None:
        stmt = stmt.where(
            (StockMove.from_location_id == location_id) | (StockMove.to_location_id == location_id)
        )
    if kind is not None:
        stmt = stmt.where(StockMove.kind == kind)
    page = paginate(
        s,
        stmt,
        list_name="inventory.moves",
        sort=StockMove.created_at,
        id_col=StockMove.id,
        cursor=cursor,
        limit=limit,
    )
    cur = currency(s)
    return Page([move_view(m, cur) for m in page.items], page.next_cursor)


def valuation_rows(s: Session) -> tuple[datetime, list[dict[str, Any]]]:
    """Every item holding stock or value, by SKU, read in one statement (one snapshot)."""
    on_hand = (
        select(func.coalesce(func.sum(StockLevel.on_hand), 0))
        .where(StockLevel.item_id == Item.id)
        .scalar_subquery()
    )
    rows = s.execute(
        select(Item.id, Item.sku, on_hand.label("on_hand"), Item.value, func.now())
        .where((Item.value != 0) | Item.id.in_(select(StockLevel.item_id)))
        .order_by(Item.sku)
    ).all()
    as_of = rows[0][4] if rows else datetime.now(UTC)
    return as_of, [
        {"item_id": r[0], "sku": r[1], "on_hand": int(r[2]), "value": int(r[3])} for r in rows
    ]
