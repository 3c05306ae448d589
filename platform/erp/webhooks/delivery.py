"""Delivering messages: claim them (a lease), POST each, record the attempt.

A job delivers one tenant's messages, endpoint by endpoint (DESIGN.md §4: batched per
job, and run by `erp worker`'s non-forking ThreadedWorker, erp/worker.py, so a job
waiting on an endpoint holds one thread of a worker, not the worker). For each
endpoint it

1. claims up to BATCH of the given messages that are pending, due and not leased,
   under a per-endpoint advisory lock, and only if no other job holds leases on that
   endpoint: one job at a time per endpoint, so a slow endpoint ties up one worker
   thread at most and never delays another endpoint's messages;
2. POSTs them, IN_FLIGHT at a time (the per-endpoint concurrency cap), each on a
   kept-alive connection (erp.webhooks.sender) and, in the batch's order, at
   the end of the batch, after a slow attempt or a 410, and at least every
   RECORD_EVERY_S, records the attempts made since the last record in one
   transaction: the attempt rows, each message moved on (delivered, the next retry,
   failed), the leases of the rest of the batch extended.

A lease outlives the longest attempt (connect 5 s + 15 s) and the batch's attempts
started while an earlier one was still running (they start within that attempt's 20 s,
since its result, slow, stops the rest), so a message is attempted again only after
its job died (SIGKILL, lost host): at least once, never twice
concurrently. The dispatcher's sweep finds such messages again once the lease ends.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.db import db
from erp.webhooks import sender, services, signing
from erp.webhooks.commands import SCHEDULE
from erp.webhooks.models import Endpoint

log = logging.getLogger("erp.webhooks")

JITTER = 0.10
#: Messages per claim; a job claims again for the same endpoint until none is due.
BATCH = 50
#: Longer than one attempt can take (connect 5 s, whole attempt 15 s, DNS).
LEASE = timedelta(seconds=45)
#: A job stops taking more work for an endpoint after this long.
JOB_BUDGET_S = 30.0
#: A push-path job (jobs.deliver_due) claims no more after this long and queues its
#: successor at the back of the queue: endpoints sharing a worker take turns.
PUSH_JOB_BUDGET_S = 0.5
#: An attempt slower than this ends its job's batch (the rest are left for later jobs).
SLOW_ATTEMPT_MS = 1000
#: Attempts in flight at once to one endpoint, each on a kept-alive connection of its
#: own: the per-endpoint concurrency cap. One job sends them (a slow endpoint holds one
#: worker thread); a receiver answering in 50 ms still gets 80 messages a second.
IN_FLIGHT = 4
#: A job records its attempts (one transaction for all made since the last record) at
#: the end of each batch, after a slow attempt or a 410, and at least this often. The
#: delivery itself never waits for it; a job that dies before recording leaves those
#: messages leased, and they are sent again after the lease (an unknown outcome).
RECORD_EVERY_S = 0.25
#: An endpoint failing this long is disabled.
FAILING_LIMIT = timedelta(days=5)


@dataclass(frozen=True)
class Claimed:
    message_id: uuid.UUID
    event_id: uuid.UUID
    body: bytes


_CLAIM = text("""
    WITH busy AS (  -- its leased rows only (ix_messages_endpoint_leased, see _CLAIMABLE)
        SELECT 1 FROM webhooks.messages b
         WHERE b.endpoint_id = :endpoint AND b.status = 'pending' AND b.lease_until > now()
         ORDER BY b.lease_until DESC
         LIMIT 1
    ), picked AS (
        SELECT m.id FROM webhooks.messages m
         WHERE m.endpoint_id = :endpoint AND m.status = 'pending'
           AND m.next_attempt_at <= now()
           AND (m.lease_until IS NULL OR m.lease_until <= now())
           AND (CAST(:ids AS uuid[]) IS NULL OR m.id = ANY(CAST(:ids AS uuid[])))
           AND NOT EXISTS (SELECT 1 FROM busy)
         ORDER BY m.next_attempt_at, m.id
         LIMIT :limit
         FOR UPDATE OF m SKIP LOCKED
    ), leased AS (  -- by primary key, whatever the statistics say (see below)
        UPDATE webhooks.messages m
           SET lease_until = now() + CAST(:lease AS interval), updated_at = now()
         WHERE m.id = ANY(ARRAY(SELECT id FROM picked))
        RETURNING m.id, m.event_id
    )
    SELECT l.id, l.event_id, o.event_type, o.occurred_at, o.payload
      FROM leased l
     CROSS JOIN LATERAL (SELECT e.event_type, e.occurred_at, e.payload
                           FROM webhooks.outbox_events e WHERE e.id = l.event_id LIMIT 1) o
""")
#: The lease and the events' bodies are read by primary key, one probe per claimed row:
#: as a join (UPDATE ... FROM picked, outbox_events), statistics taken while the tables
#: were small let the planner scan the tenant's every message and event once per
#: claimed row (auto_explain in webhooks_latency: 38 ms, 2,742 buffers per claim after
#: 20 s at 200 events/s, growing with the tenant's history; now ~0.5 ms).
_LOCK_ENDPOINT = text(
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "current_setting('app.tenant_id') || '/webhook-endpoint/' || :endpoint, 0))"
)


def body_of(event_type: str, occurred_at: datetime, payload: dict[str, Any]) -> bytes:
    """The delivered JSON: the same bytes at every attempt (jsonb's key order is fixed)."""
    stamp = occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {"type": event_type, "timestamp": stamp, "data": payload}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def claim(
    s: Session, endpoint_id: uuid.UUID, message_ids: list[uuid.UUID] | None
) -> tuple[Endpoint | None, list[Claimed]]:
    """Lease due messages of one enabled endpoint (all due ones when `message_ids` is None)."""
    s.execute(_LOCK_ENDPOINT, {"endpoint": str(endpoint_id)})
    endpoint = s.get(Endpoint, endpoint_id, populate_existing=True)
    if endpoint is None:
        return None, []
    if endpoint.disabled or endpoint.deleted_at is not None:
        # A message the fan-out made while the endpoint was being disabled or deleted
        # (it read the endpoint before that committed) settles like the others did.
        services.settle_inactive(s, endpoint)
        return None, []
    ids = None if message_ids is None else "{" + ",".join(map(str, message_ids)) + "}"
    rows = list(
        s.execute(
            _CLAIM,
            {"endpoint": endpoint_id, "ids": ids, "limit": BATCH, "lease": f"{LEASE.seconds} s"},
        )
    )
    rows.sort(key=lambda r: (r.occurred_at, r.id))
    return endpoint, [
        Claimed(r.id, r.event_id, body_of(r.event_type, r.occurred_at, r.payload)) for r in rows
    ]


def next_attempt(step: int, now: datetime) -> datetime | None:
    """When retry number `step` (0-based) is due, with ±10 % jitter; None: no more."""
    if step >= len(SCHEDULE):
        return None
    delay = SCHEDULE[step].total_seconds() * (1 + random.uniform(-JITTER, JITTER))
    return now + timedelta(seconds=delay)


#: One statement for the attempts a job made since its last record: the attempt rows,
#: each message's next state (the next retry after its jittered delay, or failed when
#: the schedule is spent), the leases of the rest of the job's batch renewed, and the
#: endpoint's failing clock (cleared by a success, started by a failure after it).
_RECORD = text("""
    WITH made AS (
        SELECT * FROM unnest(CAST(:attempt_ids AS uuid[]), CAST(:messages AS uuid[]),
                             CAST(:oks AS boolean[]), CAST(:response_statuses AS integer[]),
                             CAST(:response_bodies AS text[]), CAST(:errors AS text[]),
                             CAST(:durations AS integer[]))
               AS i(attempt_id, message, ok, response_status, response_body, error,
                    duration_ms)
    ), attempt AS (
        INSERT INTO webhooks.attempts (id, message_id, endpoint_id, status, response_status,
                                       response_body, error, duration_ms)
        SELECT i.attempt_id, i.message, :endpoint,
               CASE WHEN i.ok THEN 'succeeded' ELSE 'failed' END,
               i.response_status, i.response_body, i.error, i.duration_ms
          FROM made i
    ), rest AS (
        UPDATE webhooks.messages r SET lease_until = now() + CAST(:lease AS interval)
         WHERE r.id = ANY(CAST(:rest AS uuid[])) AND r.status = 'pending'
    ), moved AS (
        UPDATE webhooks.messages m
           SET attempts = m.attempts + 1,
               status = CASE WHEN i.ok THEN 'delivered'
                             WHEN m.schedule_step >= :steps THEN 'failed'
                             ELSE 'pending' END,
               next_attempt_at = CASE
                   WHEN i.ok OR m.schedule_step >= :steps THEN NULL
                   ELSE now() + make_interval(
                       secs => (CAST(:delays AS float8[]))[m.schedule_step + 1]
                               * (1 + :jitter * (2 * random() - 1))) END,
               schedule_step = m.schedule_step + CASE WHEN i.ok THEN 0 ELSE 1 END,
               lease_until = NULL,
               updated_at = now()
          FROM made i
         WHERE m.id = i.message AND m.status = 'pending'
    )
    UPDATE webhooks.endpoints e
       SET failing_since = CASE WHEN :last_ok THEN NULL
                                WHEN :any_ok THEN now()
                                ELSE coalesce(e.failing_since, now()) END
     WHERE e.id = :endpoint
    RETURNING e.failing_since
""")
#: An attempt's record need not wait for its WAL flush: if PostgreSQL crashes before
#: the flush, the record is lost, the lease taken at the claim (committed durably) runs
#: out, and the message is sent again with the same webhook-id, as after any unknown
#: outcome. Saves a disk flush per record.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_DELAYS = "{" + ",".join(f"{d.total_seconds():.3f}" for d in SCHEDULE) + "}"


def record(
    s: Session,
    endpoint_id: uuid.UUID,
    made: list[tuple[Claimed, sender.Outcome]],
    rest: list[uuid.UUID],
) -> bool:
    """Attempts made (in order), each message's next state, the endpoint's health: one
    transaction. True when the endpoint got disabled by them (410, or failing 5 days)."""
    now = datetime.now(UTC)
    s.execute(_ASYNC_COMMIT)
    oks = [outcome.succeeded for _, outcome in made]
    failing_since = s.execute(
        _RECORD,
        {
            "attempt_ids": [uuid.uuid4() for _ in made],
            "messages": [claimed.message_id for claimed, _ in made],
            "oks": oks,
            "response_statuses": [outcome.status for _, outcome in made],
            "response_bodies": [outcome.body for _, outcome in made],
            "errors": [outcome.error for _, outcome in made],
            "durations": [outcome.duration_ms for _, outcome in made],
            "endpoint": endpoint_id,
            "last_ok": oks[-1],
            "any_ok": any(oks),
            "steps": len(SCHEDULE),
            "delays": _DELAYS,
            "jitter": JITTER,
            "rest": "{" + ",".join(map(str, rest)) + "}",
            "lease": f"{LEASE.seconds} s",
        },
    ).scalar_one()
    if any(outcome.status == 410 for _, outcome in made):
        services.disable_by_system(s, endpoint_id, "gone")
        return True
    if failing_since is not None and now - failing_since >= FAILING_LIMIT:
        services.disable_by_system(s, endpoint_id, "failing")
        return True
    return False


_ENDPOINTS_OF = text(
    "SELECT id, endpoint_id FROM webhooks.messages WHERE id = ANY(CAST(:ids AS uuid[]))"
)


def deliver(tenant: uuid.UUID, message_ids: list[uuid.UUID]) -> int:
    """Deliver these messages of `tenant` (those still due), then whatever else is due
    for the same endpoints, within a time budget. Returns the attempts made."""
    ids = "{" + ",".join(map(str, message_ids)) + "}"
    by_endpoint: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in db.unit_of_work(
        lambda s: s.execute(_ENDPOINTS_OF, {"ids": ids}).all(), tenant=tenant
    ):
        by_endpoint[row.endpoint_id].append(row.id)
    made = 0
    for endpoint_id, mine in by_endpoint.items():
        made += deliver_endpoint(tenant, endpoint_id, mine)
    return made


def _stops(outcome: sender.Outcome) -> bool:
    """An attempt after which no more are started (a slow endpoint, or one that is gone)."""
    return outcome.duration_ms > SLOW_ATTEMPT_MS or outcome.status == 410


class _Pipe:
    """Up to IN_FLIGHT attempts at once to one endpoint, each on a kept-alive connection
    of its own (erp.webhooks.sender.Poster, taken from the process's idle connections
    and given back at the end: `sender.IDLE`); each attempt is signed as it starts.
    Once an attempt was slow or got a 410, attempts not yet started are not made
    (None)."""

    def __init__(self, allowed: tuple[str, ...], width: int) -> None:
        self._allowed = allowed
        #: a slot per attempt in flight: None until its first attempt takes a Poster
        self._free: queue.SimpleQueue[sender.Poster | None] = queue.SimpleQueue()
        for _ in range(width):
            self._free.put(None)
        self._width = width
        self._pool = ThreadPoolExecutor(width, thread_name_prefix="webhook-post")
        self._stopped = threading.Event()

    def submit(self, url: str, item: Claimed, secrets: list[str]) -> Future[sender.Outcome | None]:
        def send() -> sender.Outcome | None:
            if self._stopped.is_set():
                return None
            poster = self._free.get() or sender.IDLE.take(url, self._allowed)
            try:
                stamp = int(time.time())
                headers = signing.headers(str(item.event_id), stamp, item.body, secrets)
                outcome = poster.post(url, item.body, headers)
            finally:
                self._free.put(poster)
            if _stops(outcome):
                self._stopped.set()
            return outcome

        return self._pool.submit(send)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for _ in range(self._width):
            poster = self._free.get()
            if poster is None:
                continue
            if self._stopped.is_set():
                poster.close()  # a slow or gone endpoint: keep nothing of it
            else:
                sender.IDLE.give(poster)


def deliver_endpoint(
    tenant: uuid.UUID,
    endpoint_id: uuid.UUID,
    message_ids: list[uuid.UUID] | None,
    budget_s: float = JOB_BUDGET_S,
) -> int:
    pipe = _Pipe(db.settings.webhook_allowed_hosts, IN_FLIGHT)
    try:
        return _deliver_endpoint(tenant, endpoint_id, message_ids, budget_s, pipe)
    finally:
        pipe.close()


def _deliver_endpoint(
    tenant: uuid.UUID,
    endpoint_id: uuid.UUID,
    message_ids: list[uuid.UUID] | None,
    budget_s: float,
    pipe: _Pipe,
) -> int:
    started = time.monotonic()
    made = 0
    wanted: list[uuid.UUID] | None = message_ids
    while time.monotonic() - started < budget_s:

        def _claim(
            s: Session, wanted: list[uuid.UUID] | None = wanted
        ) -> tuple[str, list[str], list[Claimed]]:
            endpoint, batch = claim(s, endpoint_id, wanted)
            if endpoint is None or not batch:
                return "", [], []
            return endpoint.url, services.signing_secrets(endpoint, datetime.now(UTC)), batch

        url, secrets, batch = db.unit_of_work(_claim, tenant=tenant)
        if not batch:
            break
        sending = [pipe.submit(url, item, secrets) for item in batch]
        made_here: list[tuple[Claimed, sender.Outcome]] = []
        recorded_at = time.monotonic()
        for i, (item, attempt) in enumerate(zip(batch, sending, strict=True)):
            outcome = attempt.result()
            if outcome is None or _stops(outcome):
                # No more attempts: what has not started stays unsent and goes to a
                # later job (a slow endpoint gives its worker back instead of holding
                # it for the whole batch); what was in flight is recorded.
                unsent = []
                for c, f in zip(batch[i:], sending[i:], strict=True):
                    late = None if f.cancel() else f.result()
                    if late is None:
                        unsent.append(c.message_id)
                    else:
                        made_here.append((c, late))
                        made += 1
                rec = partial(record, endpoint_id=endpoint_id, made=made_here, rest=[])
                if made_here and bool(db.unit_of_work(rec, tenant=tenant)):
                    return made  # disabled by a 410: its pending messages failed with it
                if unsent:
                    db.unit_of_work(partial(_release, message_ids=unsent), tenant=tenant)
                return made
            made_here.append((item, outcome))
            made += 1
            rest = [c.message_id for c in batch[i + 1 :]]
            if not rest or time.monotonic() - recorded_at >= RECORD_EVERY_S:
                # The outcomes so far in one transaction, the rest's leases renewed.
                rec = partial(record, endpoint_id=endpoint_id, made=made_here, rest=rest)
                if db.unit_of_work(rec, tenant=tenant):
                    return made  # disabled (failing 5 days): its messages failed with it
                made_here, recorded_at = [], time.monotonic()
        wanted = None  # then anything else due for this endpoint
    return made


#: Each probe reads only the endpoint's own rows: the first due one in due order
#: (ix_messages_endpoint_due), and the latest lease (ix_messages_endpoint_leased,
#: migration 0019: pending rows with a lease only). Scalar subqueries with ORDER BY ...
#: LIMIT 1 (EXISTS would drop both) keep the planner on those indexes even with
#: statistics taken while the table was small; without them, a probe could read every
#: pending message of the tenant, or of the endpoint (a failing endpoint's backlog).
_CLAIMABLE = text("""
    SELECT (SELECT 1 FROM webhooks.messages m
             WHERE m.endpoint_id = :endpoint AND m.status = 'pending'
               AND m.next_attempt_at <= now()
               AND (m.lease_until IS NULL OR m.lease_until <= now())
             ORDER BY m.next_attempt_at, m.id LIMIT 1) IS NOT NULL
       AND (SELECT 1 FROM webhooks.messages b
             WHERE b.endpoint_id = :endpoint AND b.status = 'pending'
               AND b.lease_until > now()
             ORDER BY b.lease_until DESC LIMIT 1) IS NULL
""")


def has_claimable(tenant: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    """Whether a job starting now would claim something for this endpoint (messages
    due and no other job holding leases on it)."""
    return bool(
        db.unit_of_work(
            lambda s: s.execute(_CLAIMABLE, {"endpoint": endpoint_id}).scalar_one(),
            tenant=tenant,
        )
    )


_RELEASE = text(
    "UPDATE webhooks.messages SET lease_until = NULL "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
)


def _release(s: Session, message_ids: list[uuid.UUID]) -> None:
    s.execute(_RELEASE, {"ids": "{" + ",".join(map(str, message_ids)) + "}"})
