"""The shapes of placing and reading orders (API.md, Orders: Placing; the order JSON).

The cross-field rules (exactly one of `item_id`/`sku`, at most one of `tax_code`/`tax`,
`discount` within the line's amount) are checked by erp.orders.placement after the
load, so that these schemas keep to FastLoad's plain loop (no schema-level hooks).
"""

from __future__ import annotations

import marshmallow as ma

from erp.fields import Currency, FastLoad, Metadata, StrictInt
from erp.pagination import ListArgs, page_schema

MAX_LINES = 500
SKU_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ORDER_STATUSES = ("confirmed", "partially_fulfilled", "fulfilled", "cancelled")
_AMOUNT = ma.validate.Range(min=0)


def _optional_amount() -> StrictInt:
    return StrictInt(load_default=None, allow_none=True, validate=_AMOUNT)


def _tax_code() -> ma.fields.String:
    return ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=[ma.validate.Length(max=64), ma.validate.Regexp(CODE_RE)],
    )


class CustomerIn(FastLoad):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    email = ma.fields.Email(required=True, validate=ma.validate.Length(max=254))


class OrderLineIn(FastLoad):
    item_id = ma.fields.UUID(load_default=None, allow_none=True)
    sku = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=[ma.validate.Length(max=64), ma.validate.Regexp(SKU_RE)],
    )
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1))
    unit_price = StrictInt(required=True, validate=_AMOUNT)
    discount = StrictInt(load_default=0, validate=_AMOUNT)
    tax_code = _tax_code()
    tax = _optional_amount()


class ShippingIn(FastLoad):
    amount = StrictInt(required=True, validate=_AMOUNT)
    tax_code = _tax_code()
    tax = _optional_amount()


class OrderIn(FastLoad):
    customer = ma.fields.Nested(CustomerIn, required=True)
    currency = Currency(required=True)
    lines = ma.fields.List(
        ma.fields.Nested(OrderLineIn),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_LINES),
    )
    shipping = ma.fields.Nested(ShippingIn, load_default=None, allow_none=True)
    location_id = ma.fields.UUID(load_default=None, allow_none=True)
    channel_id = ma.fields.UUID(load_default=None, allow_none=True)
    external_id = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(min=1, max=255)
    )
    metadata = Metadata(load_default=dict)


class OrderCustomerOut(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    email = ma.fields.String()


class OrderLineOut(ma.Schema):
    id = ma.fields.UUID()
    item_id = ma.fields.UUID()
    sku = ma.fields.String()
    quantity = ma.fields.Integer()
    unit_price = ma.fields.Integer()
    tax_code = ma.fields.String(allow_none=True)
    subtotal = ma.fields.Integer()
    tax = ma.fields.Integer()
    total = ma.fields.Integer()
    backordered = ma.fields.Integer()
    fulfilled = ma.fields.Integer()
    cancelled = ma.fields.Integer()
    returned = ma.fields.Integer()


class ShippingOut(ma.Schema):
    amount = ma.fields.Integer()
    tax_code = ma.fields.String(allow_none=True)
    tax = ma.fields.Integer()
    total = ma.fields.Integer()


class OrderOut(ma.Schema):
    id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(ORDER_STATUSES))
    external_id = ma.fields.String(allow_none=True)
    channel_id = ma.fields.UUID(allow_none=True)
    currency = ma.fields.String()
    customer = ma.fields.Nested(OrderCustomerOut)
    location_id = ma.fields.UUID()
    lines = ma.fields.List(ma.fields.Nested(OrderLineOut))
    shipping = ma.fields.Nested(ShippingOut, allow_none=True)
    subtotal = ma.fields.Integer()
    tax = ma.fields.Integer()
    total = ma.fields.Integer()
    paid = ma.fields.Integer()
    credited = ma.fields.Integer()
    balance_due = ma.fields.Integer()
    metadata = ma.fields.Dict()
    created_at = ma.fields.DateTime()


class OrderListArgs(ListArgs):
    status = ma.fields.String(validate=ma.validate.OneOf(ORDER_STATUSES))
    channel_id = ma.fields.UUID()
    external_id = ma.fields.String(validate=ma.validate.Length(min=1, max=255))
    customer_id = ma.fields.UUID()


OrderPage = page_schema(OrderOut, "OrderPage")
