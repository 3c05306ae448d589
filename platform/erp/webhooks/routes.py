"""Webhooks endpoints (/api/v1/webhooks): thin — parse, call one service, shape the reply."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.idempotency import idempotent
from erp.principals import requires_scope
from erp.webhooks import catalog, queries, schemas, services
from erp.webhooks.commands import EndpointView, NewEndpoint
from erp.webhooks.models import Message

blp = Blueprint(
    "webhooks", __name__, url_prefix="/api/v1/webhooks", description="Outbound webhooks"
)


def _message(m: Message) -> dict[str, Any]:
    return {c: getattr(m, c) for c in schemas.MessageOut._declared_fields}


@blp.route("/endpoints")
class Endpoints(MethodView):
    @requires_scope("webhooks:read")
    @blp.arguments(schemas.ListArgs, location="query")
    @blp.response(200, schemas.EndpointPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The tenant's endpoints, newest first."""
        page = queries.endpoints_page(db.session, args["cursor"], args["limit"])
        return {"items": [services.view(e) for e in page.items], "next_cursor": page.next_cursor}

    @requires_scope("webhooks:write")
    @idempotent(shown_once=("secret",))
    @blp.arguments(schemas.EndpointIn)
    @blp.response(201, schemas.EndpointWithSecretOut)
    def post(self, body: dict[str, Any]) -> EndpointView:
        """Add an endpoint; its signing `secret` is shown only in this answer."""
        return services.create_endpoint(db.session, NewEndpoint(**body))


@blp.route("/endpoints/<endpoint_id>")
class EndpointById(MethodView):
    @requires_scope("webhooks:read")
    @blp.response(200, schemas.EndpointOut)
    def get(self, endpoint_id: str) -> EndpointView:
        endpoint = services.get_endpoint(db.session, parse_uuid(endpoint_id, "endpoint_id"))
        return services.view(endpoint)

    @requires_scope("webhooks:write")
    @blp.arguments(schemas.EndpointPatch)
    @blp.response(200, schemas.EndpointOut)
    def patch(self, body: dict[str, Any], endpoint_id: str) -> EndpointView:
        """Change the URL, filter or description; `disabled` switches delivery off or on."""
        return services.update_endpoint(db.session, parse_uuid(endpoint_id, "endpoint_id"), body)

    @requires_scope("webhooks:write")
    @blp.response(204)
    def delete(self, endpoint_id: str) -> None:
        """Remove the endpoint; its pending messages are cancelled."""
        services.delete_endpoint(db.session, parse_uuid(endpoint_id, "endpoint_id"))


@blp.route("/endpoints/<endpoint_id>/rotate-secret", methods=["POST"])
@requires_scope("webhooks:write")
@idempotent(shown_once=("secret",))
@blp.response(200, schemas.EndpointWithSecretOut)
def rotate_secret(endpoint_id: str) -> EndpointView:
    """A new signing secret; for 24 hours deliveries carry both signatures."""
    return services.rotate_secret(db.session, parse_uuid(endpoint_id, "endpoint_id"))


@blp.route("/endpoints/<endpoint_id>/recover", methods=["POST"])
@requires_scope("webhooks:write")
@idempotent
@blp.arguments(schemas.RecoverIn)
@blp.response(202, schemas.RecoverOut)
def recover(body: dict[str, Any], endpoint_id: str) -> dict[str, int]:
    """Failed messages created in [since, until) start a new retry schedule."""
    n = services.recover(
        db.session, parse_uuid(endpoint_id, "endpoint_id"), body["since"], body["until"]
    )
    return {"messages": n}


@blp.route("/endpoints/<endpoint_id>/test", methods=["POST"])
@requires_scope("webhooks:write")
@idempotent
@blp.response(202, schemas.MessageOut)
def send_test(endpoint_id: str) -> dict[str, Any]:
    """A `webhook.test` delivery to this endpoint only."""
    return _message(services.send_test(db.session, parse_uuid(endpoint_id, "endpoint_id")))


@blp.route("/endpoints/<endpoint_id>/messages")
@requires_scope("webhooks:read")
@blp.arguments(schemas.MessageListArgs, location="query")
@blp.response(200, schemas.MessagePage)
def messages(args: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    """The endpoint's messages (one per event), newest first."""
    endpoint = services.get_endpoint(db.session, parse_uuid(endpoint_id, "endpoint_id"))
    page = queries.messages_page(db.session, endpoint.id, args, args["cursor"], args["limit"])
    return {"items": [_message(m) for m in page.items], "next_cursor": page.next_cursor}


@blp.route("/endpoints/<endpoint_id>/messages/<message_id>/retry", methods=["POST"])
@requires_scope("webhooks:write")
@idempotent
@blp.response(202, schemas.MessageOut)
def retry(endpoint_id: str, message_id: str) -> dict[str, Any]:
    """One attempt now, with the same webhook-id."""
    return _message(
        services.retry_message(
            db.session,
            parse_uuid(endpoint_id, "endpoint_id"),
            parse_uuid(message_id, "message_id"),
        )
    )


@blp.route("/endpoints/<endpoint_id>/attempts")
@requires_scope("webhooks:read")
@blp.arguments(schemas.AttemptListArgs, location="query")
@blp.response(200, schemas.AttemptPage)
def attempts(args: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    """The endpoint's delivery attempts, newest first (first 4 KiB of each answer)."""
    endpoint = services.get_endpoint(db.session, parse_uuid(endpoint_id, "endpoint_id"))
    return queries.attempts_page(db.session, endpoint.id, args, args["cursor"], args["limit"])


@blp.route("/events")
@requires_scope("webhooks:read")
@blp.arguments(schemas.EventListArgs, location="query")
@blp.response(200, schemas.EventPage)
def events(args: dict[str, Any]) -> dict[str, Any]:
    """The tenant's events as delivered, newest first."""
    return queries.events_page(
        db.session, args.get("type"), args.get("since"), args["cursor"], args["limit"]
    )


@blp.route("/events/<event_id>")
@requires_scope("webhooks:read")
@blp.response(200, schemas.EventOut)
def event(event_id: str) -> dict[str, Any]:
    return queries.get_event(db.session, parse_uuid(event_id, "event_id"))


@blp.route("/event-types")
@requires_scope("webhooks:read")
@blp.response(200, schemas.EventTypeList)
def event_types() -> dict[str, Any]:
    """Every subscribable type, with the JSON Schema of its `data`."""
    return {"items": catalog.event_types(services.subscribable_types()), "next_cursor": None}
