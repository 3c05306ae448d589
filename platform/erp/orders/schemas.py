"""The orders API's shapes: tax rates, customers, channels (API.md, Orders)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from erp.fields import StrictInt
from erp.orders.models import CHANNEL_KINDS, SHORTAGE_POLICIES
from erp.pagination import ListArgs, page_schema

CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _name(**kw: Any) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Length(min=1, max=200), **kw)


class ArchivedListArgs(ListArgs):
    include_archived = ma.fields.Boolean(load_default=True)


# -- tax rates ---------------------------------------------------------------------------


class TaxRateIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=[ma.validate.Length(max=64), ma.validate.Regexp(CODE_RE)]
    )
    name = _name(required=True)
    rate_ppm = StrictInt(required=True, validate=ma.validate.Range(min=0, max=1_000_000))


class TaxRatePatch(ma.Schema):
    name = _name()
    archived = ma.fields.Boolean()


class TaxRateOut(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    rate_ppm = ma.fields.Integer()
    archived = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


TaxRatePage = page_schema(TaxRateOut, "TaxRatePage")


# -- customers ---------------------------------------------------------------------------


class CustomerListArgs(ListArgs):
    email = ma.fields.String(validate=ma.validate.Length(min=1, max=254))


class CustomerOut(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    email = ma.fields.String()
    created_at = ma.fields.DateTime()


CustomerPage = page_schema(CustomerOut, "CustomerPage")


# -- channels ----------------------------------------------------------------------------

#: A shop's webhook secret as the shop shows it (Shopify: a hex or `shpss_` string).
_SECRET = ma.validate.Length(min=1, max=500)


class ChannelIn(ma.Schema):
    name = _name(required=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(CHANNEL_KINDS))
    on_shortage = ma.fields.String(
        load_default="reject", validate=ma.validate.OneOf(SHORTAGE_POLICIES)
    )
    location_id = ma.fields.UUID(load_default=None, allow_none=True)
    signing_secret = ma.fields.String(load_default=None, validate=_SECRET)


class ChannelPatch(ma.Schema):
    name = _name()
    on_shortage = ma.fields.String(validate=ma.validate.OneOf(SHORTAGE_POLICIES))
    location_id = ma.fields.UUID(allow_none=True)
    archived = ma.fields.Boolean()
    signing_secret = ma.fields.String(validate=_SECRET)


class ChannelOut(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    kind = ma.fields.String()
    on_shortage = ma.fields.String()
    location_id = ma.fields.UUID(allow_none=True)
    archived = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


class ChannelWithSecretOut(ChannelOut):
    """A generic channel's `signing_secret`, shown in this answer only; a shopify
    channel's is never shown (the field is absent)."""

    signing_secret = ma.fields.String()

    @ma.post_dump
    def _hide_absent(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("signing_secret") is None:
            data.pop("signing_secret", None)
        return data


ChannelPage = page_schema(ChannelOut, "ChannelPage")
