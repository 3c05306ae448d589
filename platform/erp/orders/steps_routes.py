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
from erp.orders import placement_schemas, steps, steps_queries
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


def _lines(body: dict[str, Any]) -> list[steps.StepLine]:
    return [steps.StepLine(ln["line_id"], ln["quantity"]) for ln in body["lines"]]


def _page(kind: str, order_id: str, args: dict[str, Any]) -> Response:
    oid = parse_uuid(order_id, "order_id")
    return json_response(
        steps_queries.steps_page(db.session, kind, oid, args["cursor"], args["limit"])
    )


@blp.route("/<order_id>/fulfilments")
class Fulfilments(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.StepListArgs, location="query")
    @blp.response(200, schemas.FulfilmentPage)
    def get(self, args: dict[str, Any], order_id: str) -> Response:
        """The order's fulfilments, newest first."""
        return _page("fulfilments", order_id, args)

    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.FulfilmentIn)
    @blp.response(201, schemas.FulfilmentOut)
    def post(self, body: dict[str, Any], order_id: str) -> Response:
        """Ship units: consume their reservations (backordered units from available
        stock, else 409 `insufficient-stock`), `issue` moves, one ledger transaction
        (receivable, revenue, tax; cost of goods), `order.fulfilled`."""
        oid = parse_uuid(order_id, "order_id")
        return json_response(steps.fulfil_order(db.session, oid, _lines(body)), 201)


@blp.route("/<order_id>/payments")
class Payments(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.StepListArgs, location="query")
    @blp.response(200, schemas.PaymentPage)
    def get(self, args: dict[str, Any], order_id: str) -> Response:
        """The order's payments and refunds, newest first."""
        return _page("payments", order_id, args)

    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.PaymentIn)
    @blp.response(201, schemas.PaymentOut)
    def post(self, body: dict[str, Any], order_id: str) -> Response:
        """A payment (at most `balance_due`) or a refund (negative, while the customer is
        owed): Dr the account (default `cash`), Cr receivable; `order.paid`."""
        oid = parse_uuid(order_id, "order_id")
        payment = steps.pay_order(
            db.session,
            oid,
            body["amount"],
            body["method"],
            body.get("account_id"),
            body.get("reference"),
        )
        return json_response(payment, 201)


@blp.route("/<order_id>/returns")
class Returns(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.StepListArgs, location="query")
    @blp.response(200, schemas.ReturnPage)
    def get(self, args: dict[str, Any], order_id: str) -> Response:
        """The order's returns, newest first."""
        return _page("returns", order_id, args)

    @requires_scope("orders:write")
    @idempotent
    @blp.arguments(schemas.ReturnIn)
    @blp.response(201, schemas.ReturnOut)
    def post(self, body: dict[str, Any], order_id: str) -> Response:
        """Take back fulfilled units: a credit note and, if `restock`, `receipt` moves at
        their issue cost; `order.returned`."""
        oid = parse_uuid(order_id, "order_id")
        ret = steps.return_order(
            db.session,
            oid,
            _lines(body),
            body["restock"],
            body.get("location_id"),
            body.get("reason"),
        )
        return json_response(ret, 201)
