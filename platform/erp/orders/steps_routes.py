"""An order's steps (/api/v1/orders/{id}/...): thin — parse, call one service, answer
(API.md, Orders: Steps)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response
from erp.idempotency import idempotent
from erp.orders import placement_schemas, steps
from erp.orders import steps_schemas as schemas
from erp.principals import requires_scope

blp = Blueprint(
    "orders_steps",
    __name__,
    url_prefix="/api/v1/orders",
    description="Orders: fulfilments, payments, cancel, returns",
)


@blp.route("/<order_id>/cancel")
class Cancel(MethodView):
    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.CancelIn)
    @blp.response(200, placement_schemas.OrderOut)
    def post(self, body: dict[str, Any], order_id: str) -> Response:
        """Cancel a confirmed or partially fulfilled order (else 409): release what is
        reserved for its open units, mark them cancelled, emit `order.cancelled`."""
        oid = parse_uuid(order_id, "order_id")
        return json_response(steps.cancel_order(db.session, oid, body.get("reason")))
