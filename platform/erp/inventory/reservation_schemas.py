"""The reservation API's shapes (API.md, Inventory: Reservations)."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import FastLoad, StrictInt
from erp.inventory.models import RESERVATION_STATUSES
from erp.pagination import ListArgs, page_schema


class ReservationIn(FastLoad):
    item_id = ma.fields.UUID(required=True)
    location_id = ma.fields.UUID(required=True)
    quantity = StrictInt(required=True, validate=ma.validate.Range(min=1))
    reference = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=200)
    )


class ReleaseIn(ma.Schema):
    """No fields: a release frees whatever the reservation still holds."""


class ReservationOut(ma.Schema):
    id = ma.fields.UUID()
    item_id = ma.fields.UUID()
    location_id = ma.fields.UUID()
    quantity = ma.fields.Integer()
    consumed = ma.fields.Integer()
    status = ma.fields.String(validate=ma.validate.OneOf(RESERVATION_STATUSES))
    order_id = ma.fields.UUID(allow_none=True)
    order_line_id = ma.fields.UUID(allow_none=True)
    reference = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    created_at = ma.fields.DateTime()


class ReservationListArgs(ListArgs):
    item_id = ma.fields.UUID()
    location_id = ma.fields.UUID()
    order_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(RESERVATION_STATUSES))


ReservationPage = page_schema(ReservationOut, "ReservationPage")
