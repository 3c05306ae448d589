"""Intake from shops: `POST /hooks/v1/channels/{id}/orders` (API.md, Sales channels) and
the inbound list of a channel under /api/v1 (API.md, Orders: Channels). Thin: parse,
call the services of erp/orders/intake.py, shape the reply.

The hook is a plain Flask blueprint (`Registry.pages`): it takes no API key, so it is
outside the OpenAPI document of `/api/v1` (docs/orders.md documents it).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, g, request
from flask.views import MethodView

from erp.db import current_tenant, one_flight_scope, one_flight_state
from erp.errors import Problem, problem_response
from erp.extensions import Blueprint, db
from erp.fastpath import FastAnswer, FastRequest
from erp.fields import parse_uuid
from erp.http import json_response
from erp.idempotency import idempotent
from erp.jobs import call_after_commit
from erp.orders import intake
from erp.orders import intake_schemas as schemas
from erp.orders.kicks import kicks
from erp.principals import requires_scope
from erp.ratelimit import check_channel, count_channel

log = logging.getLogger("erp.orders.intake")

hooks = FlaskBlueprint("orders_hooks", __name__, url_prefix="/hooks/v1")

_UNAUTHORIZED = "The message's signature cannot be verified for this channel."


def _refuse(channel_id: Any) -> Response:
    """401, alike for every reason (nothing says whether the channel exists)."""
    intake.count_rejected(channel_id)
    return problem_response(Problem("unauthorized", _UNAUTHORIZED))


def _kick(tenant: Any) -> None:
    """Hand the tenant's kick over; after the commit, so it never raises (a kick not
    handed over is the sweep's, as with Redis down)."""
    try:
        kicks.add(current_app._get_current_object(), tenant)  # type: ignore[attr-defined]
    except Exception:
        log.exception("could not hand over an intake kick; the sweep will")


@hooks.route("/channels/<channel_id>/orders", methods=["POST"])
def receive_order(channel_id: str) -> Response:
    """A shop's message: verified, stored raw, answered 202; a job makes the order."""
    cid = intake.parse_channel_id(channel_id)
    if cid is None:
        return _refuse(None)
    body = request.get_data(cache=False)
    found = _verified(cid, body, intake.known_channel(cid))
    if found is None:
        return _refuse_channel(cid)
    auth, verified = found
    limited = check_channel(str(cid))
    if limited is not None:
        return limited
    g.ctx_tokens.append(current_tenant.set(auth.tenant_id))  # reset at teardown
    text, error = intake.decode_body(body)
    stored, alone = _store(auth, verified, text, error)
    if stored is None:  # the channel changed since this process last looked it up
        found = _verified(cid, body, None)
        if found is None:
            return _refuse_channel(cid)
        auth, verified = found
        stored, alone = _store(auth, verified, text, error)
        if stored is None:  # changed again meanwhile: as if it could not be verified
            return _refuse(cid)
    if stored.created and stored.status == "received":
        if alone:  # the insert was its own transaction, committed already
            _kick(auth.tenant_id)
        else:
            call_after_commit(db.session, partial(_kick, auth.tenant_id))
    answer = {"id": str(stored.id), "status": stored.status}
    return json_response(answer, 202 if stored.created else 200)


def _refuse_channel(cid: Any) -> Response:
    """401, counted per channel when the channel exists (its lookup found it)."""
    return _refuse(cid if intake.known_channel(cid) is not None else None)


def _store(
    auth: intake.ChannelAuth, verified: intake.Verified, text: str, error: Any
) -> tuple[intake.Stored | None, bool]:
    """`intake.store` as the request's one-flight call: what it stored, and whether it
    was its own transaction, committed already."""
    with one_flight_scope():
        stored = intake.store(db.session, auth, verified, text, error)
        return stored, one_flight_state.get() == "committed"


def _verified(
    cid: Any, body: bytes, known: intake.ChannelAuth | None
) -> tuple[intake.ChannelAuth, intake.Verified] | None:
    """The channel and the message's verified id: against what this process knows of
    the channel first, then (unknown here, or the signature fails: the secret may have
    been rotated) as the database has it now."""
    if known is not None:
        verified = intake.verify(known, request.headers, body, intake.now())
        if verified is not None:
            return known, verified
    auth = intake.lookup_channel(cid)
    if auth is None:
        return None
    verified = intake.verify(auth, request.headers, body, intake.now())
    return None if verified is None else (auth, verified)


def fast_receive(req: FastRequest) -> FastAnswer | None:
    """The usual message, answered before Flask (erp/fastpath.py): to a channel this
    process has looked up, its signature valid against what the lookup found, the
    channel under its limit, the body text, and the channel unchanged since (the
    store checks). Anything else is None and `receive_order` answers it."""
    cid = intake.parse_channel_id(req.params["channel_id"])
    known = intake.known_channel(cid) if cid is not None else None
    if known is None:
        return None
    verified = intake.verify(known, req.headers, req.body, intake.now())
    if verified is None:
        return None
    text, error = intake.decode_body(req.body)
    if error is not None:
        return None
    refused, limit_headers = count_channel(str(known.channel_id))
    if refused:
        return None
    token = current_tenant.set(known.tenant_id)
    try:
        stored = intake.store(None, known, verified, text, None)
    finally:
        current_tenant.reset(token)
    if stored is None:
        return None  # the channel changed: receive_order looks it up again
    if stored.created and stored.status == "received":
        _kick(known.tenant_id)
    answer = {"id": stored.id, "status": stored.status}
    return FastAnswer(202 if stored.created else 200, answer, limit_headers)


blp = Blueprint(
    "orders_intake",
    __name__,
    url_prefix="/api/v1/channels",
    description="Orders: the messages shops sent to a channel",
)


@blp.route("/<channel_id>/inbound")
class InboundMessages(MethodView):
    @requires_scope("orders:read")
    @blp.arguments(schemas.InboundListArgs, location="query")
    @blp.response(200, schemas.InboundPage)
    def get(self, args: dict[str, Any], channel_id: str) -> dict[str, Any]:
        """The channel's inbound messages, newest first (`?status=`)."""
        page = intake.messages_page(
            db.session,
            parse_uuid(channel_id, "channel_id"),
            args["status"],
            args["cursor"],
            args["limit"],
        )
        items = [intake.message_view(m) for m in page.items]
        return {"items": items, "next_cursor": page.next_cursor}


@blp.route("/<channel_id>/inbound/<message_id>")
@requires_scope("orders:read")
@blp.response(200, schemas.InboundWithBodyOut)
def get_message(channel_id: str, message_id: str) -> dict[str, Any]:
    """One inbound message, with the raw `body` received."""
    m = intake.get_message(
        db.session, parse_uuid(channel_id, "channel_id"), parse_uuid(message_id, "message_id")
    )
    return intake.message_view(m, with_body=True)


@blp.route("/<channel_id>/inbound/<message_id>/retry", methods=["POST"])
@requires_scope("orders:write")
@idempotent
@blp.response(202, schemas.InboundOut)
def retry_message(channel_id: str, message_id: str) -> dict[str, Any]:
    """Process a `failed` message again (after the catalog or mapping is fixed); any
    other status is 409."""
    m = intake.retry(
        db.session, parse_uuid(channel_id, "channel_id"), parse_uuid(message_id, "message_id")
    )
    return intake.message_view(m)
