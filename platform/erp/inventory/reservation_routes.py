"""Reservation endpoints (/api/v1/inventory/reservations): thin — parse, call one
service, shape the reply (API.md, Inventory: Reservations). The order pipeline reserves,
releases and consumes through the services, not through these routes."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response, one_flight
from erp.idempotency import idempotent
from erp.inventory import reservation_schemas as schemas
from erp.inventory import reservations
from erp.inventory.reservation_commands import ReservationView, ReserveLine
from erp.principals import requires_scope

blp = Blueprint(
    "inventory_reservations",
    __name__,
    url_prefix="/api/v1/inventory",
    description="Stock reservations",
)


@blp.route("/reservations")
class Reservations(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(schemas.ReservationListArgs, location="query")
    @blp.response(200, schemas.ReservationPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Reservations, newest first, filtered."""
        page = reservations.reservations_page(
            db.session,
            {k: args.get(k) for k in reservations.LIST_FILTERS},
            args["cursor"],
            args["limit"],
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.ReservationIn)
    @blp.response(201, schemas.ReservationOut)
    @one_flight
    def post(self, body: dict[str, Any]) -> Response:
        """Hold available stock of one item at one location; short: 409
        `insufficient-stock` naming `quantity` with what is available."""
        view = reservations.reserve_one(db.session, ReserveLine(**body))
        return json_response(view.to_json(), 201)


@blp.route("/reservations/<reservation_id>")
@requires_scope("inventory:read")
@blp.response(200, schemas.ReservationOut)
def get_reservation(reservation_id: str) -> ReservationView:
    return reservations.get_reservation(db.session, parse_uuid(reservation_id, "reservation_id"))


@blp.route("/reservations/<reservation_id>/release", methods=["POST"])
@requires_scope("inventory:write")
@idempotent
@blp.arguments(schemas.ReleaseIn)
@blp.response(200, schemas.ReservationOut)
@one_flight
def release_reservation(_body: dict[str, Any], reservation_id: str) -> Response:
    """Free what the reservation still holds (`quantity - consumed`); 409 unless it is
    held, and for an order's reservation (cancel the order instead)."""
    rid = parse_uuid(reservation_id, "reservation_id")
    return json_response(reservations.release_one(db.session, rid).to_json())
