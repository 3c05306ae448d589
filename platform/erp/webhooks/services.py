"""Webhooks: the outbox's one entry point (`emit`) and the endpoints' rules.

Every domain emits its events here, in its own transaction. Endpoints, messages and
their state changes live here too; delivery itself is erp.webhooks.delivery, fan-out
erp.webhooks.dispatcher. Nothing here commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from erp.audit import tenant_event
from erp.db import db
from erp.errors import Problem, field_problem
from erp.jobs import enqueue_after_commit
from erp.registry import registry
from erp.secretbox import current_box
from erp.webhooks import sender, signing
from erp.webhooks.commands import (
    DISABLED_EVENT,
    SCHEDULE,
    TEST_EVENT,
    EndpointView,
    NewEndpoint,
)
from erp.webhooks.models import Endpoint, Message, OutboxEvent

#: Both signatures are sent for this long after a rotation (API.md, Webhooks).
ROTATION_OVERLAP = timedelta(hours=24)
#: `recover` reaches back at most this far.
RECOVER_WINDOW = timedelta(days=14)
DELIVER_JOB = "erp.webhooks.jobs.deliver"
QUEUE = "webhooks"


def check_event_type(event_type: str) -> None:
    """Only types a domain registered (API.md, Outbound events); another is a bug."""
    if event_type not in registry().event_types:
        raise ValueError(f"unknown event type {event_type!r}")


def emit(s: Session, event_type: str, payload: dict[str, Any]) -> uuid.UUID:
    """Write an event to the outbox; it is delivered only if this transaction commits.

    The outbox's trigger (policies/webhooks.sql) queues it for the dispatcher in the
    same transaction.
    """
    check_event_type(event_type)
    event_id = uuid.uuid4()
    s.execute(insert(OutboxEvent).values(id=event_id, event_type=event_type, payload=payload))
    return event_id


def subscribable_types() -> list[str]:
    return sorted(t for t in registry().event_types if t != TEST_EVENT)


# -- checks ----------------------------------------------------------------------------


def _allowed_hosts() -> tuple[str, ...]:
    return db.settings.webhook_allowed_hosts


def check_url(url: str) -> None:
    """Syntax and literal addresses only: names are resolved and checked at each attempt."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise field_problem("validation", "url", "Not a valid URL.") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_problem("validation", "url", "Must be an absolute https URL.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise field_problem("validation", "url", "Must not contain user information.")
    if parts.fragment or url.endswith("#"):
        raise field_problem("validation", "url", "Must not contain a fragment.")
    if any(c.isspace() for c in url):
        raise field_problem("validation", "url", "Not a valid URL.")
    why = sender.literal_refused(parts.hostname, parts.scheme, _allowed_hosts())
    if why is not None:
        raise field_problem("validation", "url", why)


def check_event_types(types: list[str] | None) -> None:
    if types is None:
        return
    if not types:
        raise field_problem("validation", "event_types", "Must not be empty; omit it for all.")
    known = set(subscribable_types())
    for i, t in enumerate(types):
        if t not in known:
            raise field_problem("validation", f"event_types.{i}", f"Unknown event type {t!r}.")


# -- endpoints -------------------------------------------------------------------------


def view(e: Endpoint, secret: str | None = None) -> EndpointView:
    return EndpointView(
        id=e.id,
        url=e.url,
        description=e.description,
        event_types=list(e.event_types) if e.event_types is not None else None,
        disabled=e.disabled,
        disabled_reason=e.disabled_reason,
        created_at=e.created_at,
        secret=secret,
    )


def create_endpoint(s: Session, cmd: NewEndpoint) -> EndpointView:
    check_url(cmd.url)
    check_event_types(cmd.event_types)
    secret = signing.new_secret()
    endpoint = Endpoint(
        id=uuid.uuid4(),
        url=cmd.url,
        description=cmd.description,
        event_types=sorted(set(cmd.event_types)) if cmd.event_types is not None else None,
        secret=current_box().encrypt(secret),
    )
    s.add(endpoint)
    s.flush()
    s.refresh(endpoint)
    tenant_event(s, "webhooks.endpoint.created", "webhook_endpoint", endpoint.id)
    return view(endpoint, secret)


def get_endpoint(s: Session, endpoint_id: uuid.UUID, *, lock: bool = False) -> Endpoint:
    stmt = select(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.deleted_at.is_(None))
    if lock:
        stmt = stmt.with_for_update()
    found = s.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise Problem("not-found")
    return found


def update_endpoint(s: Session, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> EndpointView:
    endpoint = get_endpoint(s, endpoint_id, lock=True)
    if "url" in changes:
        check_url(changes["url"])
        endpoint.url = changes["url"]
    if "event_types" in changes:
        check_event_types(changes["event_types"])
        types = changes["event_types"]
        endpoint.event_types = sorted(set(types)) if types is not None else None
    if "description" in changes:
        endpoint.description = changes["description"]
    if "disabled" in changes and changes["disabled"] != endpoint.disabled:
        if changes["disabled"]:
            _disable(s, endpoint, "manual")
        else:
            endpoint.disabled, endpoint.disabled_reason = False, None
            endpoint.failing_since = None
    endpoint.updated_at = datetime.now(UTC)
    s.flush()
    tenant_event(s, "webhooks.endpoint.updated", "webhook_endpoint", endpoint.id)
    return view(endpoint)


def delete_endpoint(s: Session, endpoint_id: uuid.UUID) -> None:
    """Soft delete (its messages and attempts stay as history); pending messages are
    cancelled."""
    endpoint = get_endpoint(s, endpoint_id, lock=True)
    endpoint.deleted_at = datetime.now(UTC)
    _settle_pending(s, endpoint.id, "cancelled")
    tenant_event(s, "webhooks.endpoint.deleted", "webhook_endpoint", endpoint.id)


def rotate_secret(s: Session, endpoint_id: uuid.UUID) -> EndpointView:
    endpoint = get_endpoint(s, endpoint_id, lock=True)
    secret = signing.new_secret()
    box = current_box()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = datetime.now(UTC) + ROTATION_OVERLAP
    endpoint.secret = box.encrypt(secret)
    endpoint.updated_at = datetime.now(UTC)
    s.flush()
    tenant_event(s, "webhooks.endpoint.secret_rotated", "webhook_endpoint", endpoint.id)
    return view(endpoint, secret)


def signing_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while the rotation overlap lasts."""
    box = current_box()
    found = [box.decrypt(endpoint.secret)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_until
        and (endpoint.previous_secret_until > now)
    ):
        found.append(box.decrypt(endpoint.previous_secret))
    return found


def _settle_pending(s: Session, endpoint_id: uuid.UUID, status: str) -> None:
    s.execute(
        update(Message)
        .where(Message.endpoint_id == endpoint_id, Message.status == "pending")
        .values(status=status, next_attempt_at=None, lease_until=None, updated_at=text("now()"))
    )


def settle_inactive(s: Session, endpoint: Endpoint) -> None:
    """Pending messages of a disabled (failed) or deleted (cancelled) endpoint."""
    if endpoint.deleted_at is not None:
        _settle_pending(s, endpoint.id, "cancelled")
    elif endpoint.disabled:
        _settle_pending(s, endpoint.id, "failed")


def _disable(s: Session, endpoint: Endpoint, reason: str) -> None:
    """No new messages; its pending ones fail (`recover` re-sends them once re-enabled)."""
    endpoint.disabled, endpoint.disabled_reason = True, reason
    _settle_pending(s, endpoint.id, "failed")


def disable_by_system(s: Session, endpoint_id: uuid.UUID, reason: str) -> None:
    """410 or 5 days of failures: disabled, audited, and the tenant told by an event."""
    endpoint = get_endpoint(s, endpoint_id, lock=True)
    if endpoint.disabled:
        return
    _disable(s, endpoint, reason)
    endpoint.updated_at = datetime.now(UTC)
    s.flush()
    tenant_event(s, "webhooks.endpoint.disabled", "webhook_endpoint", endpoint.id, reason=reason)
    emit(s, DISABLED_EVENT, view(endpoint).event_data())


# -- messages --------------------------------------------------------------------------


def _deliver_soon(s: Session, message_ids: list[uuid.UUID]) -> None:
    if message_ids:
        tenant = str(s.execute(text("SELECT app.current_tenant_id()")).scalar_one())
        enqueue_after_commit(s, DELIVER_JOB, tenant, [str(m) for m in message_ids], queue=QUEUE)


def _enabled(s: Session, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = get_endpoint(s, endpoint_id, lock=True)
    if endpoint.disabled:
        raise Problem("conflict", f"The endpoint is disabled ({endpoint.disabled_reason}).")
    return endpoint


def send_test(s: Session, endpoint_id: uuid.UUID) -> Message:
    """A webhook.test event delivered to this endpoint only, whatever its filter."""
    endpoint = _enabled(s, endpoint_id)
    event_id = uuid.uuid4()
    s.execute(
        insert(OutboxEvent).values(
            id=event_id, event_type=TEST_EVENT, payload={"endpoint_id": str(endpoint.id)}
        )
    )
    message = Message(
        id=uuid.uuid4(),
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=TEST_EVENT,
        status="pending",
        next_attempt_at=datetime.now(UTC),
    )
    s.add(message)
    s.flush()
    s.refresh(message)
    _deliver_soon(s, [message.id])
    return message


def recover(s: Session, endpoint_id: uuid.UUID, since: datetime, until: datetime | None) -> int:
    """The endpoint's failed messages created in [since, until) start a new schedule."""
    if since < datetime.now(UTC) - RECOVER_WINDOW:
        raise field_problem("validation", "since", "At most 14 days back.")
    if until is not None and until <= since:
        raise field_problem("validation", "until", "Must be after since.")
    endpoint = _enabled(s, endpoint_id)
    stmt = (
        update(Message)
        .where(
            Message.endpoint_id == endpoint.id,
            Message.status == "failed",
            Message.created_at >= since,
        )
        .values(
            status="pending",
            schedule_step=0,
            next_attempt_at=text("now()"),
            lease_until=None,
            updated_at=text("now()"),
        )
        .returning(Message.id)
    )
    if until is not None:
        stmt = stmt.where(Message.created_at < until)
    ids = list(s.scalars(stmt))
    for start in range(0, len(ids), 50):
        _deliver_soon(s, ids[start : start + 50])
    return len(ids)


def retry_message(s: Session, endpoint_id: uuid.UUID, message_id: uuid.UUID) -> Message:
    """One attempt now, same webhook-id; a failed or delivered message makes only that one."""
    endpoint = _enabled(s, endpoint_id)
    message = s.scalars(
        select(Message)
        .where(Message.id == message_id, Message.endpoint_id == endpoint.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if message is None:
        raise Problem("not-found")
    if message.status == "cancelled":
        raise Problem("conflict", "The message is cancelled.")
    if message.status != "pending":
        message.schedule_step = len(SCHEDULE)
    message.status = "pending"
    message.next_attempt_at = datetime.now(UTC)
    s.flush()
    _deliver_soon(s, [message.id])
    return message
