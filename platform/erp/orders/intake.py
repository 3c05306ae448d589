"""Intake from shops (API.md, Sales channels): a shop's signed webhook is stored raw and
answered at once; an RQ job (erp/orders/jobs.py) turns it into an order.

- Receiving (`lookup_channel`, `verify`, `store`): the channel is found before its
  tenant is known by the SECURITY DEFINER `app.inbound_channel` (ids and secrets only,
  no row for an unknown or archived channel or one of a tenant that is not active);
  the message is then inserted under RLS with that tenant pinned, deduplicated by
  (channel, webhook id) with ON CONFLICT.
- Processing (`process`): the message row, locked FOR UPDATE SKIP LOCKED while still
  `received`, decides whether there is anything to do, so a job that runs twice, or
  again after its worker died, applies the message once; the order's unique
  (channel, external_id) backs that. The placement runs in a savepoint: a refusal
  leaves the message `failed` with the problem, nothing else written.
- Sweeping (`sweep`, run by `erp scheduler`): messages still `received` after
  SWEEP_AFTER (Redis was down, or the job was lost) are enqueued again.

Services: no Flask, never commit (the request or the job's unit of work does).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Select, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp.currencies import MINOR_UNITS
from erp.db import autocommit_row, call_alone, call_one, db
from erp.errors import Problem, flatten_errors, problem_from_db
from erp.inputs import parse_json
from erp.jobs import enqueue_after_commit, queue
from erp.orders import mappers, placement, signatures, steps
from erp.orders.kicks import DRAIN_JOB, QUEUE, drain_flag, kick
from erp.orders.models import InboundMessage, Order
from erp.orders.services import get_channel
from erp.pagination import Page, paginate
from erp.secretbox import SecretBoxError, current_box

log = logging.getLogger("erp.orders.intake")

PROCESS_JOB = "erp.orders.jobs.process"
#: A drain job hands over (a new job at the back of the queue) after this long.
DRAIN_BUDGET_S = 10.0
#: A message still `received` this long after it came is enqueued again by the sweep.
SWEEP_AFTER = timedelta(seconds=10)
SWEEP_BATCH = 1000
DISCOVERY_BATCH = 500


# -- receiving ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelAuth:
    """What verifying a message to a channel needs (app.inbound_channel)."""

    channel_id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    secrets: tuple[str, ...]
    #: the stored tokens (secret, previous secret) these secrets were opened from: the
    #: insert checks the channel still holds exactly these (`store`)
    tokens: tuple[str, str | None]


_LOOKUP = "SELECT tenant_id, kind, secret, previous_secret FROM app.inbound_channel(%(id)s)"


def parse_channel_id(raw: str) -> uuid.UUID | None:
    """The path's channel id, or None for anything that is not a canonical UUID."""
    if len(raw) != 36:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


#: Opened secrets by their stored token (a new secret is a new token): Fernet's HMAC and
#: AES per message cost more than the rest of the check. Bounded; cleared when full.
_OPENED: dict[str, str] = {}
_OPENED_MAX = 10_000


def _open(token: str) -> str:
    found = _OPENED.get(token)
    if found is None:
        found = current_box().decrypt(token)
        if len(_OPENED) >= _OPENED_MAX:
            _OPENED.clear()
        _OPENED[token] = found
    return found


def lookup_channel(channel_id: uuid.UUID) -> ChannelAuth | None:
    """The channel's tenant, kind and valid secrets; None when it cannot take messages
    (unknown, archived, tenant suspended or deleted), or its secret cannot be read."""
    row = autocommit_row(db.engine, _LOOKUP, {"id": channel_id})
    if row is None:
        _KNOWN.pop(channel_id, None)
        return None
    try:
        found = [_open(row.secret)]
        if row.previous_secret is not None:
            found.append(_open(row.previous_secret))
    except SecretBoxError:
        log.exception("a channel's secret cannot be decrypted (ENCRYPTION_KEYS)")
        return None
    auth = ChannelAuth(
        channel_id, row.tenant_id, row.kind, tuple(found), (row.secret, row.previous_secret)
    )
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    _KNOWN[channel_id] = auth
    return auth


#: What each channel's last lookup in this process found. Only a first guess: `store`
#: inserts only while app.inbound_channel still answers the same (tenant, secrets),
#: so archiving a channel, suspending its tenant, rotating a secret or a previous
#: secret expiring takes effect on the next message, and a message is never stored on
#: a guess. It saves the lookup's round trip of every other message. Bounded.
_KNOWN: dict[uuid.UUID, ChannelAuth] = {}
_KNOWN_MAX = 10_000


def known_channel(channel_id: uuid.UUID) -> ChannelAuth | None:
    """The channel as this process last found it, or None (look it up)."""
    return _KNOWN.get(channel_id)


def forget_channel(channel_id: uuid.UUID) -> None:
    _KNOWN.pop(channel_id, None)


@dataclass(frozen=True)
class Verified:
    webhook_id: str
    topic: str | None


def _topic(headers: Any) -> str | None:
    value = headers.get("X-Shopify-Topic")
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not value.isprintable():
        return None
    return value


def verify(auth: ChannelAuth, headers: Any, body: bytes, now: datetime) -> Verified | None:
    """The message's id (and Shopify topic) if its signature is the channel's."""
    if auth.kind == "shopify":
        msg_id = signatures.verify_shopify(auth.secrets[0], headers, body)
        return None if msg_id is None else Verified(msg_id, _topic(headers))
    msg_id = signatures.verify_standard(auth.secrets, headers, body, now)
    return None if msg_id is None else Verified(msg_id, None)


def rejected_key(channel_id: uuid.UUID | None) -> str:
    """The Redis counter of refused signatures: per channel for a channel that exists,
    one counter for every id that names none (never a key per made-up id)."""
    name = str(channel_id) if channel_id is not None else "unknown"
    return f"{queue.prefix}:orders:hooks:rejected:{name}"


def count_rejected(channel_id: uuid.UUID | None) -> None:
    """Count a refused message; best effort (Redis away: only logged)."""
    try:
        queue.redis.incr(rejected_key(channel_id))
    except RedisError:
        log.warning("could not count a refused inbound message")


def decode_body(body: bytes) -> tuple[str, dict[str, Any] | None]:
    """The body as stored text, and the problem that fails it at once when it is not
    UTF-8 text PostgreSQL can hold (invalid UTF-8, a NUL): kept, shown replaced."""
    try:
        textual = body.decode("utf-8")
    except UnicodeDecodeError:
        textual = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        return textual, _problem("malformed-request", "The body is not valid UTF-8 text.")
    if "\x00" in textual:
        return textual.replace("\x00", "\ufffd"), _problem(
            "malformed-request", "The body holds a NUL character."
        )
    return textual, None


@dataclass(frozen=True)
class Stored:
    id: str
    status: str
    created: bool


_STORE = """
    SELECT message_id, message_status, created FROM orders.accept_inbound(
        %(channel_id)s, %(webhook_id)s, %(topic)s, %(body)s, %(error)s::jsonb,
        %(secret)s, %(previous)s)
"""


def store(
    s: Session | None,
    auth: ChannelAuth,
    verified: Verified,
    body: str,
    error: dict[str, Any] | None,
) -> Stored | None:
    """Insert the message (tenant pinned by the caller) or find the one of the same
    webhook id: one call (orders.accept_inbound), race-safe; None, nothing written,
    when the channel no longer answers as `auth` says (archived, tenant suspended,
    secret rotated or expired: look it up again). A body that is not text is stored
    `failed` at once (`error`). `s` None: the call is its own transaction, with no
    session at all (`erp.db.call_alone`: the hook's fast path)."""
    params = {
        "channel_id": auth.channel_id,
        "webhook_id": verified.webhook_id,
        "topic": verified.topic,
        "body": body,
        "error": None if error is None else json.dumps(error),
        "secret": auth.tokens[0],
        "previous": auth.tokens[1],
    }
    row = call_one(s, _STORE, params) if s is not None else call_alone(_STORE, params)
    if row[0] is None:
        forget_channel(auth.channel_id)
        return None
    return Stored(row[0], row[1], row[2])


# -- processing ---------------------------------------------------------------------------


def _problem(
    slug: str, detail: str, errors: dict[str, list[str]] | None = None, title: str | None = None
) -> dict[str, Any]:
    from erp.errors import PROBLEM_TYPES

    base = db.settings.problem_base_uri
    out: dict[str, Any] = {
        "type": f"{base}{slug}",
        "title": title or PROBLEM_TYPES[slug][0],
        "detail": detail,
    }
    if errors:
        out["errors"] = errors
    return out


def _problem_of(p: Problem) -> dict[str, Any]:
    return _problem(p.slug, p.detail, p.errors)


_CLAIM = text("""
    SELECT id, channel_id, topic, body FROM orders.inbound_messages
     WHERE id = :id AND status = 'received'
       FOR UPDATE SKIP LOCKED
""")
_SETTLE = text("""
    UPDATE orders.inbound_messages
       SET status = :status, order_id = :order_id, error = CAST(:error AS jsonb),
           attempts = attempts + 1, processed_at = clock_timestamp()
     WHERE id = :id
""")


@dataclass(frozen=True)
class Outcome:
    status: str
    order_id: uuid.UUID | None = None
    error: dict[str, Any] | None = None


def process(s: Session, message_id: uuid.UUID) -> str | None:
    """Apply one `received` message (the pinned tenant's): its new status, or None when
    there is nothing to do (already applied, or another job holds it)."""
    return _apply_row(s, s.execute(_CLAIM, {"id": message_id}).one_or_none())


def process_next(s: Session, picked: list[uuid.UUID] | None = None) -> str | None:
    """Apply the oldest `received` message no other job holds; None when there is none.
    Its id is appended to `picked` before it is applied (to name it if that fails)."""
    return _apply_row(s, s.execute(_NEXT).one_or_none(), picked)


def _apply_row(s: Session, row: Any, picked: list[uuid.UUID] | None = None) -> str | None:
    if row is None:
        return None
    if picked is not None:
        picked.append(row.id)
    outcome = _apply(s, row.channel_id, row.topic, row.body)
    s.execute(
        _SETTLE,
        {
            "id": row.id,
            "status": outcome.status,
            "order_id": outcome.order_id,
            "error": None if outcome.error is None else json.dumps(outcome.error),
        },
    )
    return outcome.status


_NEXT = text("""
    SELECT id, channel_id, topic, body FROM orders.inbound_messages
     WHERE status = 'received'
     ORDER BY created_at, id
     LIMIT 1
       FOR UPDATE SKIP LOCKED
""")


#: A message whose processing raised (not a refusal: those fail it with the problem)
#: this many times is set `failed` (`internal`), so the tenant's later messages, which
#: every drain takes after it (oldest first), are not held behind it for good.
MAX_ATTEMPTS = 5
_CRASHED = text("""
    UPDATE orders.inbound_messages
       SET attempts = attempts + 1,
           status = CASE WHEN attempts + 1 >= :cap THEN 'failed' ELSE status END,
           error = CASE WHEN attempts + 1 >= :cap THEN CAST(:error AS jsonb) END,
           processed_at = CASE WHEN attempts + 1 >= :cap THEN clock_timestamp() END
     WHERE id = :id AND status = 'received'
 RETURNING status
""")


def _passing(problem: Problem) -> bool:
    """Whether a database error is an outage or contention, not the message's fault:
    what the API answers 503, or with Retry-After (a lock not granted in time, a
    serialization failure, a deadlock). The job fails and the message is tried again
    later, never failed for it nor counted towards MAX_ATTEMPTS."""
    return problem.slug == "unavailable" or bool(problem.headers.get("Retry-After"))


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and _passing(problem_from_db(exc))


def crashed(tenant: uuid.UUID, message_id: uuid.UUID) -> bool:
    """Count a failed attempt at a message (its own transaction: the attempt's rolled
    back); True when that was the last one allowed and the message is `failed` now."""
    error = _problem(
        "internal",
        f"Processing this message failed {MAX_ATTEMPTS} times with an unexpected error; it "
        "was logged. Retry the message once the cause is fixed.",
    )
    params = {"id": message_id, "cap": MAX_ATTEMPTS, "error": json.dumps(error)}
    status = db.unit_of_work(
        lambda s: s.execute(_CRASHED, params).scalar_one_or_none(), tenant=tenant
    )
    return status == "failed"


def drain(tenant: uuid.UUID, slot: int | None) -> int:
    """Apply the tenant's `received` messages, oldest first, one transaction each,
    until none is left unclaimed or DRAIN_BUDGET_S passes; then clear this job's flag
    and, if messages came meanwhile, kick again. The messages applied. A message whose
    processing raises is counted (`crashed`) and the error raised (the job fails; the
    sweep or the next kick tries again), until MAX_ATTEMPTS sets it `failed` and the
    drain goes on past it."""
    picked: list[uuid.UUID] = []

    def one(s: Session) -> bool:
        picked.clear()
        return process_next(s, picked) is not None

    done = 0
    ends = time.monotonic() + DRAIN_BUDGET_S
    try:
        while time.monotonic() < ends:
            try:
                if not db.unit_of_work(one, tenant=tenant):
                    break
            except Exception as exc:
                if not picked or _transient(exc) or not crashed(tenant, picked[0]):
                    raise
                log.exception("inbound message %s failed for good", picked[0])
            done += 1
    finally:
        if slot is not None:
            queue.redis.delete(drain_flag(tenant, slot))
    if db.unit_of_work(lambda s: s.execute(_NEXT).first() is not None, tenant=tenant):
        kick(tenant)
    return done


def _apply(s: Session, channel_id: uuid.UUID, topic: str | None, body: str) -> Outcome:
    channel = get_channel(s, channel_id)
    try:
        # the API's own parse and checks (erp/inputs.py: nesting, NUL, lone surrogates,
        # numbers), which the hook skips: what they refuse fails this message; let
        # through, json.loads' RecursionError or a surrogate's UnicodeEncodeError at the
        # driver would fail the job instead and leave the message, the oldest
        # `received`, to stop every later drain of the tenant
        payload = parse_json(body.encode())
    except Problem as p:
        return Outcome("failed", error=_problem_of(p))
    try:
        if channel.kind == "shopify":
            action = mappers.shopify_action(topic)
            if action == "ignore":
                return Outcome("ignored")
            if action == "cancel":
                external_id = mappers.shopify_cancel_external_id(payload)
                return _cancel(s, channel_id, external_id)
            order: dict[str, Any] = dict(mappers.map_shopify_order(payload, MINOR_UNITS.get))
        else:
            order = mappers.map_generic_order(payload)
    except mappers.MappingError as exc:
        return Outcome("failed", error=_problem(exc.slug, exc.detail, exc.errors))
    return _place(s, channel_id, order)


def _load_order(order: dict[str, Any]) -> placement.PlaceOrder:
    from erp.orders.placement_schemas import OrderIn

    try:
        loaded = OrderIn().load(order)
    except Exception as exc:  # marshmallow's ValidationError: the body's fields
        messages = getattr(exc, "messages", None)
        if messages is None:
            raise
        errors = flatten_errors(messages)
        raise Problem("validation", "The order failed validation.", errors=errors) from exc
    return placement.PlaceOrder.from_body(loaded)


def _place(s: Session, channel_id: uuid.UUID, order: dict[str, Any]) -> Outcome:
    order["channel_id"] = str(channel_id)
    try:
        with s.begin_nested():
            placed = placement.place_order(s, _load_order(order))
    except Problem as p:
        if p.slug == "conflict" and p.errors and "external_id" in p.errors:
            existing = _order_of(s, channel_id, str(order.get("external_id")))
            if existing is not None:
                return Outcome("duplicate", order_id=existing)
        return Outcome("failed", error=_problem_of(p))
    except DBAPIError as exc:
        problem = problem_from_db(exc)
        if problem.slug == "internal" or _passing(problem):
            raise  # contention or an outage: the job fails, the sweep retries it
        return Outcome("failed", error=_problem_of(problem))
    if placed.created:
        return Outcome("processed", order_id=placed.order_id)
    return Outcome("duplicate", order_id=placed.order_id)


def _order_of(s: Session, channel_id: uuid.UUID, external_id: str) -> uuid.UUID | None:
    stmt = select(Order.id).where(Order.channel_id == channel_id, Order.external_id == external_id)
    return s.execute(stmt).scalar_one_or_none()


def _cancel(s: Session, channel_id: uuid.UUID, external_id: str) -> Outcome:
    order_id = _order_of(s, channel_id, external_id)
    if order_id is None:
        return Outcome(
            "failed",
            error=_problem("not-found", f"No order of this channel has external_id {external_id}."),
        )
    try:
        with s.begin_nested():
            steps.cancel_order(s, order_id, "Cancelled in the shop.")
    except Problem as p:
        return Outcome("failed", order_id=order_id, error=_problem_of(p))
    return Outcome("processed", order_id=order_id)


# -- the inbound list, retry --------------------------------------------------------------


def messages_page(
    s: Session, channel_id: uuid.UUID, status: str | None, cursor: str | None, limit: int
) -> Page[InboundMessage]:
    get_channel(s, channel_id)  # 404 for an absent or foreign channel
    stmt: Select[Any] = select(InboundMessage).where(InboundMessage.channel_id == channel_id)
    if status is not None:
        stmt = stmt.where(InboundMessage.status == status)
    return paginate(
        s,
        stmt,
        list_name=f"orders.inbound.{channel_id}",
        sort=InboundMessage.created_at,
        id_col=InboundMessage.id,
        cursor=cursor,
        limit=limit,
    )


def get_message(
    s: Session, channel_id: uuid.UUID, message_id: uuid.UUID, *, lock: bool = False
) -> InboundMessage:
    stmt = select(InboundMessage).where(
        InboundMessage.channel_id == channel_id, InboundMessage.id == message_id
    )
    if lock:
        stmt = stmt.with_for_update()
    found = s.execute(stmt).scalar_one_or_none()
    if found is None:
        raise Problem("not-found", "No such inbound message.")
    return found


_REOPEN = text("""
    UPDATE orders.inbound_messages
       SET status = 'received', error = NULL, order_id = NULL, processed_at = NULL
     WHERE id = :id
""")


def retry(s: Session, channel_id: uuid.UUID, message_id: uuid.UUID) -> InboundMessage:
    """A `failed` message back to `received`, its job queued after commit; any other
    status is 409 naming it."""
    message = get_message(s, channel_id, message_id, lock=True)
    if message.status != "failed":
        raise Problem(
            "conflict", f"The message is {message.status}; only a failed message is retried."
        )
    s.execute(_REOPEN, {"id": message.id})
    s.refresh(message)
    enqueue_after_commit(s, PROCESS_JOB, str(message.tenant_id), str(message.id), queue=QUEUE)
    return message


def message_view(m: InboundMessage, *, with_body: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "webhook_id": m.webhook_id,
        "status": m.status,
        "order_id": m.order_id,
        "error": m.error,
        "created_at": m.created_at,
        "processed_at": m.processed_at,
    }
    if with_body:
        out["body"] = m.body
    return out


# -- the sweep ----------------------------------------------------------------------------

_DISCOVER = text("SELECT * FROM app.tenants_with_inbound_to_sweep(:after, :limit)")
_STALE = text("""
    SELECT id FROM orders.inbound_messages
     WHERE status = 'received' AND created_at < now() - :after
     ORDER BY created_at, id
     LIMIT :limit
""")


def sweep_tenant(tenant: uuid.UUID) -> int:
    """The tenant's messages still `received` after SWEEP_AFTER; when there are any, a
    drain job is enqueued whatever the flags say (a flag may belong to a dead job)."""

    def work(s: Session) -> int:
        found = len(list(s.execute(_STALE, {"after": SWEEP_AFTER, "limit": SWEEP_BATCH})))
        if found:
            enqueue_after_commit(s, DRAIN_JOB, str(tenant), None, queue=QUEUE)
        return found

    return db.unit_of_work(work, tenant=tenant)


def sweep() -> int:
    """Every active tenant with messages left `received` (`erp scheduler`): the stale
    messages found (a drain job enqueued per such tenant)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        tenants = list(
            conn.execute(_DISCOVER, {"after": SWEEP_AFTER, "limit": DISCOVERY_BATCH}).scalars()
        )
    return sum(sweep_tenant(t) for t in tenants)


def now() -> datetime:
    return datetime.now(UTC)
