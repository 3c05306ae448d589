"""The inbound messages' shapes (API.md, Orders: Channels, `GET /channels/{id}/inbound`)."""

from __future__ import annotations

import marshmallow as ma

from erp.orders.models import INBOUND_STATUSES
from erp.pagination import ListArgs, page_schema


class InboundListArgs(ListArgs):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(INBOUND_STATUSES))


class InboundProblem(ma.Schema):
    type = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    detail = ma.fields.String(required=True)
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()), required=False
    )


class InboundOut(ma.Schema):
    id = ma.fields.UUID(required=True)
    webhook_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(INBOUND_STATUSES))
    order_id = ma.fields.UUID(allow_none=True, required=True)
    error = ma.fields.Nested(InboundProblem, allow_none=True, required=True)
    created_at = ma.fields.DateTime(required=True)
    processed_at = ma.fields.DateTime(allow_none=True, required=True)


class InboundWithBodyOut(InboundOut):
    body = ma.fields.String(required=True)


InboundPage = page_schema(InboundOut, "InboundPage")
