"""Inventory endpoints (/api/v1/inventory): thin — parse, call one service, shape the reply."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response, one_flight
from erp.idempotency import idempotent
from erp.inventory import queries, reports, schemas, services
from erp.inventory.commands import NewItem, NewLocation, NewMove
from erp.principals import requires_scope

blp = Blueprint(
    "inventory", __name__, url_prefix="/api/v1/inventory", description="Items, locations, stock"
)


def _page(page: Any) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


# -- items ------------------------------------------------------------------------------


@blp.route("/items")
class Items(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.ItemListArgs, location="query")
    @blp.response(200, schemas.ItemPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Items with their stock summed over every location, newest first."""
        return _page(
            queries.items_page(
                db.session,
                args.get("sku"),
                args.get("low"),
                args["include_archived"],
                args["cursor"],
                args["limit"],
            )
        )

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.ItemIn)
    @blp.response(201, schemas.ItemOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create an item; `sku` is unique in the tenant."""
        return services.create_item(db.session, NewItem(**body))


@blp.route("/items/<item_id>")
class ItemById(MethodView):
    @requires_scope("inventory:read")
    @blp.response(200, schemas.ItemOut)
    def get(self, item_id: str) -> Any:
        return services.get_item(db.session, parse_uuid(item_id, "item_id"))

    @requires_scope("inventory:write")
    @blp.arguments(schemas.ItemPatch)
    @blp.response(200, schemas.ItemOut)
    def patch(self, body: dict[str, Any], item_id: str) -> Any:
        """Rename, set the reorder point, archive."""
        return services.update_item(db.session, parse_uuid(item_id, "item_id"), body)


# -- locations --------------------------------------------------------------------------


@blp.route("/locations")
class Locations(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.LocationListArgs, location="query")
    @blp.response(200, schemas.LocationPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        return _page(
            queries.locations_page(
                db.session,
                args.get("kind"),
                args.get("parent_id"),
                args["include_archived"],
                args["cursor"],
                args["limit"],
            )
        )

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.LocationIn)
    @blp.response(201, schemas.LocationOut)
    def post(self, body: dict[str, Any]) -> Any:
        """A warehouse, or a zone or bin under its parent; `code` is unique in the tenant."""
        return services.create_location(db.session, NewLocation(**body))


@blp.route("/locations/<location_id>")
class LocationById(MethodView):
    @requires_scope("inventory:read")
    @blp.response(200, schemas.LocationOut)
    def get(self, location_id: str) -> Any:
        return services.get_location(db.session, parse_uuid(location_id, "location_id"))

    @requires_scope("inventory:write")
    @blp.arguments(schemas.LocationPatch)
    @blp.response(200, schemas.LocationOut)
    def patch(self, body: dict[str, Any], location_id: str) -> Any:
        """Rename, allow negative stock, make the default, archive."""
        return services.update_location(db.session, parse_uuid(location_id, "location_id"), body)


# -- stock and moves ----------------------------------------------------------------------


@blp.route("/stock")
@requires_scope("inventory:read")
@blp.arguments(schemas.LevelListArgs, location="query")
@blp.response(200, schemas.LevelPage)
def stock(args: dict[str, Any]) -> dict[str, Any]:
    """On hand, reserved and available per item and location that stock has touched."""
    return _page(
        queries.levels_page(
            db.session, args.get("item_id"), args.get("location_id"), args["cursor"], args["limit"]
        )
    )


@blp.route("/moves")
class Moves(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.MoveListArgs, location="query")
    @blp.response(200, schemas.MovePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        return _page(
            queries.moves_page(
                db.session,
                args.get("item_id"),
                args.get("location_id"),
                args.get("kind"),
                args["cursor"],
                args["limit"],
            )
        )

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.MoveIn)
    @blp.response(201, schemas.MoveOut)
    @one_flight
    def post(self, body: dict[str, Any]) -> Response:
        """A receipt, issue, transfer or adjustment, posted to the ledger by account role."""
        move = services.record_move(db.session, NewMove(**body))
        return json_response(move.to_json(), 201)


@blp.route("/moves/<move_id>")
@requires_scope("inventory:read")
@blp.response(200, schemas.MoveOut)
def get_move(move_id: str) -> Any:
    return queries.get_move(db.session, parse_uuid(move_id, "move_id"))


# -- valuation --------------------------------------------------------------------------


@blp.route("/valuation")
@requires_scope("inventory:read")
@blp.response(200, schemas.ValuationOut)
@blp.alt_response(200, content_type="text/csv", description="With Accept: text/csv")
def valuation() -> Any:
    """Stock value per item (moving average) beside the inventory account's balance."""
    data = services.valuation(db.session)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(
            reports.valuation_csv(data),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="valuation.csv"'},
        )
    return data
