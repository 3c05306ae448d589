"""The API's shapes for suppliers, purchase orders, receipts and cycle counts
(API.md, Inventory: Suppliers, Purchase orders, Counts)."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import AwareDateTime, StrictInt
from erp.pagination import ListArgs, page_schema

#: API.md, Purchase orders: a purchase order (and a receipt) holds 1-500 lines.
MAX_LINES = 500
PO_STATUSES = ("draft", "sent", "partially_received", "received", "cancelled")
_NAME = ma.validate.Length(min=1, max=200)
_REFERENCE = ma.validate.Length(max=200)
_REASON = ma.validate.Length(max=500)
_LINES = ma.validate.Length(min=1, max=MAX_LINES)

# -- suppliers -------------------------------------------------------------------------


class SupplierIn(ma.Schema):
    name = ma.fields.String(required=True, validate=_NAME)
    email = ma.fields.Email(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=254)
    )
    phone = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=[ma.validate.Length(max=50), ma.validate.Regexp(r"^[0-9+().\- ]{1,50}$")],
    )
    reference = ma.fields.String(load_default=None, allow_none=True, validate=_REFERENCE)


class SupplierPatch(ma.Schema):
    name = ma.fields.String(validate=_NAME)
    email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=254))
    phone = ma.fields.String(
        allow_none=True,
        validate=[ma.validate.Length(max=50), ma.validate.Regexp(r"^[0-9+().\- ]{1,50}$")],
    )
    reference = ma.fields.String(allow_none=True, validate=_REFERENCE)
    archived = ma.fields.Boolean()


class SupplierOut(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    reference = ma.fields.String(allow_none=True)
    archived = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


class SupplierListArgs(ListArgs):
    include_archived = ma.fields.Boolean(load_default=True)


SupplierPage = page_schema(SupplierOut, "SupplierPage")

# -- purchase orders -------------------------------------------------------------------


class PurchaseOrderLineIn(ma.Schema):
    item_id = ma.fields.UUID(required=True)
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1))
    unit_cost = StrictInt(required=True, validate=ma.validate.Range(min=0))


class PurchaseOrderIn(ma.Schema):
    supplier_id = ma.fields.UUID(required=True)
    location_id = ma.fields.UUID(load_default=None, allow_none=True)
    expected_at = AwareDateTime(load_default=None, allow_none=True)
    reference = ma.fields.String(load_default=None, allow_none=True, validate=_REFERENCE)
    lines = ma.fields.List(ma.fields.Nested(PurchaseOrderLineIn), required=True, validate=_LINES)


class PurchaseOrderPatch(ma.Schema):
    """Only in draft; `lines` replaces every line."""

    location_id = ma.fields.UUID()
    expected_at = AwareDateTime(allow_none=True)
    reference = ma.fields.String(allow_none=True, validate=_REFERENCE)
    lines = ma.fields.List(ma.fields.Nested(PurchaseOrderLineIn), validate=_LINES)


class PurchaseOrderLineOut(ma.Schema):
    id = ma.fields.UUID()
    item_id = ma.fields.UUID()
    quantity = ma.fields.Integer()
    received = ma.fields.Integer()
    unit_cost = ma.fields.Integer()


class PurchaseOrderOut(ma.Schema):
    id = ma.fields.UUID()
    supplier_id = ma.fields.UUID()
    status = ma.fields.String()
    currency = ma.fields.String()
    location_id = ma.fields.UUID()
    reference = ma.fields.String(allow_none=True)
    expected_at = ma.fields.DateTime(allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(PurchaseOrderLineOut))
    total = ma.fields.Integer()
    created_at = ma.fields.DateTime()


class PurchaseOrderListArgs(ListArgs):
    supplier_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(PO_STATUSES))


PurchaseOrderPage = page_schema(PurchaseOrderOut, "PurchaseOrderPage")


class NoBody(ma.Schema):
    """`send` and `cancel` take no fields."""


class ReceiveLineIn(ma.Schema):
    line_id = ma.fields.UUID(required=True)
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1))
    location_id = ma.fields.UUID(load_default=None, allow_none=True)


class ReceiveIn(ma.Schema):
    lines = ma.fields.List(ma.fields.Nested(ReceiveLineIn), required=True, validate=_LINES)
    over_receipt = ma.fields.Boolean(load_default=False)


class ReceiptLineOut(ma.Schema):
    line_id = ma.fields.UUID()
    item_id = ma.fields.UUID()
    quantity = ma.fields.Integer()
    location_id = ma.fields.UUID()
    unit_cost = ma.fields.Integer()
    move_id = ma.fields.UUID()


class ReceiptOut(ma.Schema):
    id = ma.fields.UUID()
    purchase_order_id = ma.fields.UUID()
    lines = ma.fields.List(ma.fields.Nested(ReceiptLineOut))
    transaction_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime()


ReceiptPage = page_schema(ReceiptOut, "ReceiptPage")

# -- cycle counts ----------------------------------------------------------------------


class CountLineIn(ma.Schema):
    item_id = ma.fields.UUID(required=True)
    counted = StrictInt(required=True, validate=ma.validate.Range(min=0))


class CountIn(ma.Schema):
    location_id = ma.fields.UUID(required=True)
    lines = ma.fields.List(ma.fields.Nested(CountLineIn), required=True, validate=_LINES)
    reason = ma.fields.String(load_default=None, allow_none=True, validate=_REASON)


class CountLineOut(ma.Schema):
    item_id = ma.fields.UUID()
    expected = ma.fields.Integer()
    counted = ma.fields.Integer()
    difference = ma.fields.Integer()
    move_id = ma.fields.UUID(allow_none=True)


class CountOut(ma.Schema):
    id = ma.fields.UUID()
    location_id = ma.fields.UUID()
    reason = ma.fields.String(allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(CountLineOut))
    created_at = ma.fields.DateTime()


CountPage = page_schema(CountOut, "CountPage")
