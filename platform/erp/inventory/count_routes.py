"""Cycle counts (/api/v1/inventory/counts): thin — parse, call one service, shape the
reply (API.md, Inventory: Counts)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response, one_flight
from erp.idempotency import idempotent
from erp.inventory import counts
from erp.inventory import purchasing_schemas as schemas
from erp.inventory.counts import NewCount
from erp.pagination import ListArgs
from erp.principals import requires_scope

blp = Blueprint(
    "inventory_counts", __name__, url_prefix="/api/v1/inventory", description="Cycle counts"
)


@blp.route("/counts")
class Counts(MethodView):
    @requires_scope("inventory:read")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, schemas.CountPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Cycle counts, newest first."""
        return counts.counts_page(db.session, args["cursor"], args["limit"])

    @requires_scope("inventory:write")
    @idempotent
    @blp.arguments(schemas.CountIn)
    @blp.response(201, schemas.CountOut)
    @one_flight
    def post(self, body: dict[str, Any]) -> Response:
        """Record a count at a location: each non-zero difference from what is on hand
        becomes an `adjustment` move (reason_code `count`), posted to the ledger; a
        count below what is reserved is 409 insufficient-stock."""
        return json_response(counts.count(db.session, NewCount.from_body(body)), 201)


@blp.route("/counts/<count_id>")
@requires_scope("inventory:read")
@blp.response(200, schemas.CountOut)
def get_count(count_id: str) -> dict[str, Any]:
    return counts.get_count(db.session, parse_uuid(count_id, "count_id"))
