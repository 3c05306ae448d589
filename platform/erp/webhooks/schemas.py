"""The webhooks API's shapes (API.md, Webhooks)."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import AwareDateTime
from erp.pagination import ListArgs, page_schema

__all__ = ["ListArgs"]


def _type_field(**kwargs: object) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Length(min=1, max=100), **kwargs)  # type: ignore[arg-type]


class EndpointIn(ma.Schema):
    url = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2048))
    event_types = ma.fields.List(
        _type_field(),
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(max=100),
    )
    description = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=500)
    )


class EndpointPatch(ma.Schema):
    url = ma.fields.String(validate=ma.validate.Length(min=1, max=2048))
    event_types = ma.fields.List(
        _type_field(), allow_none=True, validate=ma.validate.Length(max=100)
    )
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=500))
    disabled = ma.fields.Boolean()


class EndpointOut(ma.Schema):
    id = ma.fields.UUID()
    url = ma.fields.String()
    description = ma.fields.String(allow_none=True)
    event_types = ma.fields.List(ma.fields.String(), allow_none=True)
    disabled = ma.fields.Boolean()
    disabled_reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


class EndpointWithSecretOut(EndpointOut):
    secret = ma.fields.String()


EndpointPage = page_schema(EndpointOut, "WebhookEndpointPage")


class RecoverIn(ma.Schema):
    since = AwareDateTime(required=True)
    until = AwareDateTime(load_default=None, allow_none=True)


class RecoverOut(ma.Schema):
    messages = ma.fields.Integer()


class NoBody(ma.Schema):
    """No fields."""


class MessageOut(ma.Schema):
    id = ma.fields.UUID()
    event_id = ma.fields.UUID()
    event_type = ma.fields.String()
    status = ma.fields.String()
    attempts = ma.fields.Integer()
    next_attempt_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()


MessagePage = page_schema(MessageOut, "WebhookMessagePage")
MESSAGE_STATUSES = ("pending", "delivered", "failed", "cancelled")


class MessageListArgs(ListArgs):
    status = ma.fields.String(validate=ma.validate.OneOf(MESSAGE_STATUSES))
    event_type = _type_field()


class AttemptOut(ma.Schema):
    id = ma.fields.UUID()
    message_id = ma.fields.UUID()
    event_id = ma.fields.UUID()
    event_type = ma.fields.String()
    status = ma.fields.String()
    response_status = ma.fields.Integer(allow_none=True)
    response_body = ma.fields.String(allow_none=True)
    error = ma.fields.String(allow_none=True)
    duration_ms = ma.fields.Integer()
    created_at = ma.fields.DateTime()


AttemptPage = page_schema(AttemptOut, "WebhookAttemptPage")


class AttemptListArgs(ListArgs):
    message_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(["succeeded", "failed"]))


class EventOut(ma.Schema):
    id = ma.fields.UUID()
    type = ma.fields.String()
    timestamp = ma.fields.DateTime()
    data = ma.fields.Dict()


EventPage = page_schema(EventOut, "WebhookEventPage")


class EventListArgs(ListArgs):
    type = _type_field()
    since = AwareDateTime()


class EventTypeOut(ma.Schema):
    type = ma.fields.String()
    description = ma.fields.String()
    schema = ma.fields.Dict()


class EventTypeList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EventTypeOut))
    next_cursor = ma.fields.String(allow_none=True)
