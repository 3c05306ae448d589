"""The inventory API's shapes (API.md, Inventory)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from erp.fields import FastLoad, StrictInt
from erp.inventory.models import LOCATION_KINDS, MOVE_KINDS, REASON_CODES
from erp.pagination import ListArgs, page_schema

CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
UNIT_RE = r"^[a-z][a-z0-9_]{0,15}$"
I64 = 2**63 - 1


def _code(**kw: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[ma.validate.Length(max=64), ma.validate.Regexp(CODE_RE)], **kw
    )


def _name(**kw: Any) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Length(min=1, max=200), **kw)


# -- items -------------------------------------------------------------------------------


class ItemIn(ma.Schema):
    sku = _code(required=True)
    name = _name(required=True)
    unit = ma.fields.String(
        required=True, validate=[ma.validate.Length(max=16), ma.validate.Regexp(UNIT_RE)]
    )
    reorder_point = StrictInt(
        load_default=None, allow_none=True, validate=ma.validate.Range(min=0, max=I64)
    )


class ItemPatch(ma.Schema):
    name = _name()
    reorder_point = StrictInt(allow_none=True, validate=ma.validate.Range(min=0, max=I64))
    archived = ma.fields.Boolean()


class ItemOut(ma.Schema):
    id = ma.fields.UUID()
    sku = ma.fields.String()
    name = ma.fields.String()
    unit = ma.fields.String()
    reorder_point = ma.fields.Integer(allow_none=True)
    archived = ma.fields.Boolean()
    on_hand = ma.fields.Integer()
    reserved = ma.fields.Integer()
    available = ma.fields.Integer()
    value = ma.fields.Integer()
    currency = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


class ItemListArgs(ListArgs):
    sku = ma.fields.String(validate=ma.validate.Length(max=64))
    low = ma.fields.Boolean()
    include_archived = ma.fields.Boolean(load_default=True)


ItemPage = page_schema(ItemOut, "ItemPage")


# -- locations ---------------------------------------------------------------------------


class LocationIn(ma.Schema):
    code = _code(required=True)
    name = _name(required=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(LOCATION_KINDS))
    parent_id = ma.fields.UUID(load_default=None, allow_none=True)
    allow_negative = ma.fields.Boolean(load_default=False)


class LocationPatch(ma.Schema):
    name = _name()
    allow_negative = ma.fields.Boolean()
    default = ma.fields.Boolean()
    archived = ma.fields.Boolean()


class LocationOut(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    parent_id = ma.fields.UUID(allow_none=True)
    allow_negative = ma.fields.Boolean()
    default = ma.fields.Boolean()
    archived = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


class LocationListArgs(ListArgs):
    kind = ma.fields.String(validate=ma.validate.OneOf(LOCATION_KINDS))
    parent_id = ma.fields.UUID()
    include_archived = ma.fields.Boolean(load_default=True)


LocationPage = page_schema(LocationOut, "LocationPage")


# -- stock levels ------------------------------------------------------------------------


class LevelOut(ma.Schema):
    item_id = ma.fields.UUID()
    sku = ma.fields.String()
    location_id = ma.fields.UUID()
    on_hand = ma.fields.Integer()
    reserved = ma.fields.Integer()
    available = ma.fields.Integer()
    updated_at = ma.fields.DateTime()


class LevelListArgs(ListArgs):
    item_id = ma.fields.UUID()
    location_id = ma.fields.UUID()


LevelPage = page_schema(LevelOut, "LevelPage")


# -- moves -------------------------------------------------------------------------------


class MoveIn(FastLoad):
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(MOVE_KINDS))
    item_id = ma.fields.UUID(required=True)
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1, max=I64))
    from_location_id = ma.fields.UUID(load_default=None, allow_none=True)
    to_location_id = ma.fields.UUID(load_default=None, allow_none=True)
    unit_cost = StrictInt(load_default=None, allow_none=True, validate=ma.validate.Range(min=0))
    reason_code = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.OneOf(REASON_CODES)
    )
    reason = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=500)
    )
    reference = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=200)
    )
    counter_account_id = ma.fields.UUID(load_default=None, allow_none=True)


class SourceOut(ma.Schema):
    type = ma.fields.String()
    id = ma.fields.UUID()


class MoveOut(ma.Schema):
    id = ma.fields.UUID()
    kind = ma.fields.String()
    item_id = ma.fields.UUID()
    quantity = ma.fields.Integer()
    from_location_id = ma.fields.UUID(allow_none=True)
    to_location_id = ma.fields.UUID(allow_none=True)
    unit_cost = ma.fields.Integer(allow_none=True)
    value = ma.fields.Integer(allow_none=True)
    currency = ma.fields.String(allow_none=True)
    reason_code = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    reference = ma.fields.String(allow_none=True)
    source = ma.fields.Nested(SourceOut, allow_none=True)
    transaction_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime()


class MoveListArgs(ListArgs):
    item_id = ma.fields.UUID()
    location_id = ma.fields.UUID()
    kind = ma.fields.String(validate=ma.validate.OneOf(MOVE_KINDS))


MovePage = page_schema(MoveOut, "MovePage")


# -- valuation ---------------------------------------------------------------------------


class ValuationRow(ma.Schema):
    item_id = ma.fields.UUID()
    sku = ma.fields.String()
    on_hand = ma.fields.Integer()
    value = ma.fields.Integer()


class ValuationOut(ma.Schema):
    as_of = ma.fields.DateTime()
    currency = ma.fields.String(allow_none=True)
    rows = ma.fields.List(ma.fields.Nested(ValuationRow))
    total = ma.fields.Integer()
    ledger_balance = ma.fields.Integer(allow_none=True)
