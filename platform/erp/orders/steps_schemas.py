"""The shapes of an order's steps (API.md, Orders: Steps): cancel, fulfilments,
payments, returns, and their lists."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import FastLoad, StrictInt
from erp.orders.models import PAYMENT_METHODS
from erp.pagination import ListArgs, page_schema

MAX_LINES = 500


class CancelIn(FastLoad):
    reason = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=500)
    )


class StepLineIn(FastLoad):
    line_id = ma.fields.UUID(required=True)
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1))


def _lines() -> ma.fields.List[ma.fields.Nested]:
    return ma.fields.List(
        ma.fields.Nested(StepLineIn),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_LINES),
    )


class FulfilmentIn(FastLoad):
    lines = _lines()


class PaymentIn(FastLoad):
    amount = StrictInt(required=True)
    method = ma.fields.String(required=True, validate=ma.validate.OneOf(PAYMENT_METHODS))
    account_id = ma.fields.UUID(load_default=None, allow_none=True)
    reference = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=200)
    )


class ReturnIn(FastLoad):
    lines = _lines()
    restock = ma.fields.Boolean(required=True)
    location_id = ma.fields.UUID(load_default=None, allow_none=True)
    reason = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=500)
    )


class StepLineOut(ma.Schema):
    line_id = ma.fields.UUID()
    item_id = ma.fields.UUID()
    quantity = ma.fields.Integer()
    cost = ma.fields.Integer()
    move_id = ma.fields.UUID(allow_none=True)


class FulfilmentOut(ma.Schema):
    id = ma.fields.UUID()
    order_id = ma.fields.UUID()
    lines = ma.fields.List(ma.fields.Nested(StepLineOut))
    transaction_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime()


class PaymentOut(ma.Schema):
    id = ma.fields.UUID()
    order_id = ma.fields.UUID()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    method = ma.fields.String()
    account_id = ma.fields.UUID()
    reference = ma.fields.String(allow_none=True)
    transaction_id = ma.fields.UUID()
    created_at = ma.fields.DateTime()


class ReturnOut(ma.Schema):
    id = ma.fields.UUID()
    order_id = ma.fields.UUID()
    lines = ma.fields.List(ma.fields.Nested(StepLineOut))
    restock = ma.fields.Boolean()
    location_id = ma.fields.UUID(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    transaction_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime()


FulfilmentPage = page_schema(FulfilmentOut, "FulfilmentPage")
PaymentPage = page_schema(PaymentOut, "PaymentPage")
ReturnPage = page_schema(ReturnOut, "ReturnPage")
StepListArgs = ListArgs
