"""`GET /api/v1/inventory/events`: the tenant's stock events as Server-Sent Events.

Thin: the machinery (one LISTEN session per process, the per-tenant reads under RLS,
the xmin watermark that makes `Last-Event-ID` resume safe) is erp/streams.py. Each
stream holds a server thread for as long as it is open, so a process serves at most
STREAM_MAX_CLIENTS of them (503 beyond): the API process a few, `erp stream` (the
process the ingress routes this path to) hundreds (docs/operations.md, "Streams").
"""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import Response, current_app, request

from erp import streams
from erp.errors import Problem
from erp.extensions import Blueprint, db
from erp.inventory.services import CHANGED_EVENT, LOW_EVENT
from erp.principals import current_principal, requires_scope

STREAMED = (CHANGED_EVENT, LOW_EVENT)
#: Streams one API worker process serves at once, each holding one of its few threads
#: (a convenience for a single process); `erp stream` sets STREAM_MAX_CLIENTS to its
#: threads less a few (erp/server.py).
DEFAULT_MAX_CLIENTS = 1

blp = Blueprint(
    "inventory_stream",
    __name__,
    url_prefix="/api/v1/inventory",
    description="Live stock: Server-Sent Events",
)


class StreamArgs(ma.Schema):
    item_id = ma.fields.UUID(metadata={"description": "Only this item's events."})
    location_id = ma.fields.UUID(
        metadata={"description": "Only this location's events (`stock.low` has none: kept)."}
    )


class StreamHeaders(ma.Schema):
    last_event_id = ma.fields.UUID(
        data_key="Last-Event-ID",
        metadata={"description": "Resume after this event (the last `id:` received)."},
    )


_DESCRIPTION = (
    "`text/event-stream`: `id:` the event id, `event:` `stock.changed` or `stock.low`, "
    "`data:` the event's data (API.md, Outbound events); a `: ping` comment every 15 s; "
    "with `Last-Event-ID`, the events after it (of the last hour; else `event: reset` "
    "first: reload levels). The server ends a stream after 10 minutes: reconnect with "
    "`Last-Event-ID` (EventSource does), and the credential is checked again."
)


@blp.route("/events")
@requires_scope("inventory:read")
@blp.arguments(StreamArgs, location="query")
@blp.arguments(StreamHeaders, location="headers", unknown=ma.EXCLUDE)
@blp.response(200, content_type="text/event-stream", description=_DESCRIPTION)
@blp.alt_response(503, description="This process serves its maximum of streams.")
def events(args: dict[str, Any], headers: dict[str, Any]) -> Response:
    """Committed stock changes of the caller's tenant, live."""
    tenant = current_principal().tenant_id
    assert tenant is not None  # requires_scope admits tenant principals only
    filters: dict[str, str] = {k: str(args[k]) for k in ("item_id", "location_id") if k in args}
    limit = current_app.config.get("STREAM_MAX_CLIENTS", DEFAULT_MAX_CLIENTS)
    if not streams.gate.enter(limit):
        raise Problem(
            "unavailable", "Too many open streams here; retry.", headers={"Retry-After": "5"}
        )
    sub = streams.hub_for(db.settings.listen_url()).subscribe(tenant)
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            sub.close()
            streams.gate.leave()

    try:
        stream = _open(sub, headers.get("last_event_id"), filters)
    except BaseException:
        close()
        raise
    response = Response(
        stream.frames(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(close)
    return response


def _open(
    sub: streams.Subscription, last_event_id: uuid.UUID | None, filters: dict[str, str]
) -> streams.Stream:
    """Where the stream starts, read in the request's transaction (after subscribing,
    so nothing that commits meanwhile goes unrung)."""
    conn = db.session.connection()
    resumed = None
    if last_event_id is not None:
        resumed = streams.resume_cursor(conn, last_event_id, STREAMED)
    start = streams.Start(resumed) if resumed else streams.start_position(conn, STREAMED)
    return streams.Stream(
        engine=db.engine,
        sub=sub,
        types=STREAMED,
        filters=filters,
        cursor=start.cursor,
        skip=start.seen,
        skip_until=start.seen_until,
        reset=last_event_id is not None and resumed is None,
        # gunicorn's and werkzeug's name for the client's socket (None: not checked)
        client=request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket"),
        ping_s=current_app.config.get("STREAM_PING_S", streams.PING_S),
        max_age_s=current_app.config.get("STREAM_MAX_AGE_S", streams.MAX_AGE_S),
    )
