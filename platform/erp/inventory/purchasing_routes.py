"""Suppliers and purchase orders (/api/v1/inventory): thin — parse, call one service,
shape the reply (API.md, Inventory: Suppliers, Purchase orders)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response, one_flight
from erp.idempotency import idempotent
from erp.inventory import purchasing
from erp.inventory import purchasing_schemas as schemas
from erp.inventory.purchasing import NewPurchaseOrder, NewSupplier, PurchaseOrderView, Receive
from erp.pagination import ListArgs
from erp.principals import requires_scope

blp = Blueprint(
    "inventory_purchasing",
    __name__,
    url_prefix="/api/v1/inventory",
    description="Suppliers and purchase orders",
)


def _po_id(value: str) -> Any:
    return parse_uuid(value, "purchase_order_id")


@blp.route("/suppliers")
class Suppliers(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.SupplierListArgs, location="query")
    @blp.response(200, schemas.SupplierPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Suppliers, newest first."""
        return purchasing.suppliers_page(
            db.session, args["include_archived"], args["cursor"], args["limit"]
        )

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.SupplierIn)
    @blp.response(201, schemas.SupplierOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a supplier."""
        return purchasing.create_supplier(db.session, NewSupplier(**body))


@blp.route("/suppliers/<supplier_id>")
class SupplierById(MethodView):
    @requires_scope("inventory:read")
    @blp.response(200, schemas.SupplierOut)
    def get(self, supplier_id: str) -> dict[str, Any]:
        return purchasing.get_supplier(db.session, parse_uuid(supplier_id, "supplier_id"))

    @requires_scope("inventory:write")
    @blp.arguments(schemas.SupplierPatch)
    @blp.response(200, schemas.SupplierOut)
    def patch(self, body: dict[str, Any], supplier_id: str) -> dict[str, Any]:
        """Change the fields sent; `archived: true` retires the supplier (no new orders)."""
        return purchasing.update_supplier(db.session, parse_uuid(supplier_id, "supplier_id"), body)


@blp.route("/purchase-orders")
class PurchaseOrders(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.PurchaseOrderListArgs, location="query")
    @blp.response(200, schemas.PurchaseOrderPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Purchase orders, newest first, filtered by supplier and status."""
        return purchasing.purchase_orders_page(
            db.session, args.get("supplier_id"), args.get("status"), args["cursor"], args["limit"]
        )

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.PurchaseOrderIn)
    @blp.response(201, schemas.PurchaseOrderOut)
    def post(self, body: dict[str, Any]) -> PurchaseOrderView:
        """A draft purchase order in the base currency (1-500 lines; location: the
        default location unless given)."""
        return purchasing.create_purchase_order(db.session, NewPurchaseOrder.from_body(body))


@blp.route("/purchase-orders/<purchase_order_id>")
class PurchaseOrderById(MethodView):
    @requires_scope("inventory:read")
    @blp.response(200, schemas.PurchaseOrderOut)
    def get(self, purchase_order_id: str) -> PurchaseOrderView:
        return purchasing.get_purchase_order(db.session, _po_id(purchase_order_id))

    @requires_scope("inventory:write")
    @blp.arguments(schemas.PurchaseOrderPatch)
    @blp.response(200, schemas.PurchaseOrderOut)
    def patch(self, body: dict[str, Any], purchase_order_id: str) -> PurchaseOrderView:
        """A draft only: change the fields sent; `lines` replaces every line."""
        return purchasing.update_purchase_order(db.session, _po_id(purchase_order_id), body)


@blp.route("/purchase-orders/<purchase_order_id>/send", methods=["POST"])
@requires_scope("inventory:write")
@idempotent
@blp.arguments(schemas.NoBody)
@blp.response(200, schemas.PurchaseOrderOut)
def send(body: dict[str, Any], purchase_order_id: str) -> PurchaseOrderView:
    """draft -> sent."""
    return purchasing.transition(db.session, _po_id(purchase_order_id), "send")


@blp.route("/purchase-orders/<purchase_order_id>/cancel", methods=["POST"])
@requires_scope("inventory:write")
@idempotent
@blp.arguments(schemas.NoBody)
@blp.response(200, schemas.PurchaseOrderOut)
def cancel(body: dict[str, Any], purchase_order_id: str) -> PurchaseOrderView:
    """draft or sent -> cancelled."""
    return purchasing.transition(db.session, _po_id(purchase_order_id), "cancel")


@blp.route("/purchase-orders/<purchase_order_id>/receive", methods=["POST"])
@requires_scope("inventory:write")
@idempotent
@blp.arguments(schemas.ReceiveIn)
@blp.response(201, schemas.ReceiptOut)
@one_flight
def receive(body: dict[str, Any], purchase_order_id: str) -> Response:
    """Receive lines of a sent or partially received order: one receipt move per line
    at the line's unit cost, one ledger transaction (Dr inventory, Cr accounts
    payable), one purchase_order.received event; more than is left on a line is 422
    unless `over_receipt: true`."""
    cmd = Receive.from_body(_po_id(purchase_order_id), body)
    return json_response(purchasing.receive(db.session, cmd), 201)


@blp.route("/purchase-orders/<purchase_order_id>/receipts")
@requires_scope("inventory:read")
@blp.arguments(ListArgs, location="query")
@blp.response(200, schemas.ReceiptPage)
def receipts(args: dict[str, Any], purchase_order_id: str) -> dict[str, Any]:
    """The order's receipts, newest first."""
    return purchasing.receipts_page(
        db.session, _po_id(purchase_order_id), args["cursor"], args["limit"]
    )
