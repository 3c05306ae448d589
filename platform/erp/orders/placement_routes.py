"""Placing and reading orders (/api/v1/orders): thin — parse, call one service, answer
the JSON text the database built (API.md, Orders: Placing; the order JSON)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import one_flight
from erp.idempotency import idempotent
from erp.orders import placement, placement_queries
from erp.orders import placement_schemas as schemas
from erp.principals import requires_scope

blp = Blueprint(
    "orders_placement",
    __name__,
    url_prefix="/api/v1/orders",
    description="Orders: placing and reading",
)


def _json_text(body: str, status: int = 200) -> Response:
    return current_app.response_class(body, status=status, mimetype="application/json")


@blp.route("")
class Orders(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.OrderListArgs, location="query")
    @blp.response(200, schemas.OrderPage)
    def get(self, args: dict[str, Any]) -> Response:
        """Orders, newest first, filtered."""
        body = placement_queries.orders_page_json(
            db.session,
            {k: args.get(k) for k in placement_queries.LIST_FILTERS},
            args["cursor"],
            args["limit"],
        )
        return _json_text(body)

    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.OrderIn)
    @blp.response(201, schemas.OrderOut)
    @blp.alt_response(
        200, schema=schemas.OrderOut, description="The order of this external_id, same body"
    )
    @one_flight
    def post(self, body: dict[str, Any]) -> Response:
        """Place an order: price it, reserve every line (or backorder, as the channel
        says), write it and emit `order.created`, in one database transaction. A short
        line: 409 `insufficient-stock` naming `lines.<i>.quantity`."""
        placed = placement.place_order(db.session, placement.PlaceOrder.from_body(body))
        return _json_text(placed.body, 201 if placed.created else 200)


@blp.route("/<order_id>")
@requires_scope("orders:read")
@blp.response(200, schemas.OrderOut)
def get_order(order_id: str) -> Response:
    """One order."""
    oid = parse_uuid(order_id, "order_id")
    return _json_text(placement_queries.order_json(db.session, oid))
