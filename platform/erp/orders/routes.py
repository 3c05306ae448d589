"""Tax rates, customers and sales channels (/api/v1): thin — parse, call one service,
shape the reply (API.md, Orders)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.idempotency import idempotent
from erp.orders import queries, schemas, services
from erp.orders.commands import ChannelView, CustomerView, NewChannel, NewTaxRate, TaxRateView
from erp.principals import requires_scope

blp = Blueprint(
    "orders_setup",
    __name__,
    url_prefix="/api/v1",
    description="Orders: tax rates, customers and sales channels",
)


@blp.route("/tax-rates")
class TaxRates(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.ArchivedListArgs, location="query")
    @blp.response(200, schemas.TaxRatePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Tax rates, newest first."""
        page = queries.tax_rates_page(
            db.session, args["include_archived"], args["cursor"], args["limit"]
        )
        items = [services.tax_rate_view(r) for r in page.items]
        return {"items": items, "next_cursor": page.next_cursor}

    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.TaxRateIn)
    @blp.response(201, schemas.TaxRateOut)
    def post(self, body: dict[str, Any]) -> TaxRateView:
        """Add a tax rate; its code is unique and its rate never changes."""
        return services.create_tax_rate(db.session, NewTaxRate(**body))


@blp.route("/tax-rates/<rate_id>")
class TaxRateById(MethodView):
    @requires_scope("orders:read")
    @blp.response(200, schemas.TaxRateOut)
    def get(self, rate_id: str) -> TaxRateView:
        return services.get_tax_rate(db.session, parse_uuid(rate_id, "rate_id"))

    @requires_scope("orders:write")
    @blp.arguments(schemas.TaxRatePatch)
    @blp.response(200, schemas.TaxRateOut)
    def patch(self, body: dict[str, Any], rate_id: str) -> TaxRateView:
        """Rename, or `archived: true` (no new use); a rate is a new code."""
        return services.update_tax_rate(db.session, parse_uuid(rate_id, "rate_id"), body)


@blp.route("/customers")
@requires_scope("orders:read")
@blp.arguments(schemas.CustomerListArgs, location="query")
@blp.response(200, schemas.CustomerPage)
def customers(args: dict[str, Any]) -> dict[str, Any]:
    """Customers (made by orders), newest first; `email` matches case-insensitively."""
    page = queries.customers_page(db.session, args.get("email"), args["cursor"], args["limit"])
    items = [services.customer_view(c) for c in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


@blp.route("/customers/<customer_id>")
@requires_scope("orders:read")
@blp.response(200, schemas.CustomerOut)
def customer(customer_id: str) -> CustomerView:
    return services.get_customer(db.session, parse_uuid(customer_id, "customer_id"))


@blp.route("/channels")
class Channels(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.ArchivedListArgs, location="query")
    @blp.response(200, schemas.ChannelPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Sales channels, newest first."""
        page = queries.channels_page(
            db.session, args["include_archived"], args["cursor"], args["limit"]
        )
        items = [services.channel_view(c) for c in page.items]
        return {"items": items, "next_cursor": page.next_cursor}

    @requires_scope("orders:write")
    @idempotent(shown_once=("signing_secret",))
    @blp.arguments(schemas.ChannelIn)
    @blp.response(201, schemas.ChannelWithSecretOut)
    def post(self, body: dict[str, Any]) -> ChannelView:
        """Add a channel. A generic channel's `signing_secret` is made and shown only in
        this answer; a shopify channel takes the shop's secret and never shows it."""
        return services.create_channel(db.session, NewChannel(**body))


@blp.route("/channels/<channel_id>")
class ChannelById(MethodView):
    @requires_scope("orders:read")
    @blp.response(200, schemas.ChannelOut)
    def get(self, channel_id: str) -> ChannelView:
        channel = services.get_channel(db.session, parse_uuid(channel_id, "channel_id"))
        return services.channel_view(channel)

    @requires_scope("orders:write")
    @blp.arguments(schemas.ChannelPatch)
    @blp.response(200, schemas.ChannelOut)
    def patch(self, body: dict[str, Any], channel_id: str) -> ChannelView:
        """Change the fields sent; `signing_secret` for shopify channels only;
        `archived: true` stops the channel accepting messages."""
        return services.update_channel(db.session, parse_uuid(channel_id, "channel_id"), body)


@blp.route("/channels/<channel_id>/rotate-secret", methods=["POST"])
@requires_scope("orders:write")
@idempotent(shown_once=("signing_secret",))
@blp.response(200, schemas.ChannelWithSecretOut)
def rotate_secret(channel_id: str) -> ChannelView:
    """A new signing secret (generic channels); the old one is accepted for 24 hours."""
    return services.rotate_secret(db.session, parse_uuid(channel_id, "channel_id"))
