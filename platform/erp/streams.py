"""Real-time streams of a tenant's outbox events, as Server-Sent Events (DESIGN.md §4).

The pieces, in the order an event travels:

- A trigger on the outbox (policies/stream_notify.sql) sends `NOTIFY erp_stream,
  '<tenant id>'` for the event types a stream serves. PostgreSQL delivers it at commit
  only (never for rolled-back work) and folds a transaction's identical notifications.
- `Hub`: one LISTEN session per process (LISTEN_DATABASE_URL: a direct connection,
  never transaction-mode pgbouncer), fanned out to every stream of the tenant named.
  The payload says only *whose* events changed; it carries nothing to serve.
- Each woken stream reads its own events (`read_batch`) in a short transaction pinned
  to its tenant, so row-level security decides what it sees; nothing here filters by
  tenant.
- Ordering, so that a resume misses nothing although ids are not commit order: each
  event records `xact_id` (the writer's `pg_current_xact_id()`), and a read serves only
  events whose transaction is older than its snapshot's xmin (every transaction below
  it has ended, so no event can still appear behind the cursor), in (xact_id, id)
  order. The cursor is the last (xact_id, id) served; `Last-Event-ID` names an event,
  whose (xact_id, id) is looked up again on reconnect. An event held back by the
  watermark (an older transaction, of any tenant or database, still open) is read
  again once the hub, which reads the xmin every XMIN_POLL_S while any stream waits
  (one query per process), sees it pass: no notification will say so.
- A read is one round trip (BEGIN, the tenant pin, the statement and COMMIT in one
  message: erp.db.call_one's one flight) whose one row carries the SSE frames, built
  by PostgreSQL. Streams of one tenant at the same cursor share one read begun after
  they were rung (`SharedReads`).
"""

from __future__ import annotations

import logging
import random
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text

from erp.db import TenantSession, call_one, one_flight_scope, pg_array, tenant_context

log = logging.getLogger("erp.streams")

CHANNEL = "erp_stream"
#: A comment line this often keeps proxies from closing an idle stream (API.md).
PING_S = 15.0
#: `Last-Event-ID` of an event older than this (or unknown) starts with `event: reset`.
RESUME_WINDOW = timedelta(hours=1)
#: A new stream skips at most this many events it could already see (beyond: some
#: events of the moment before it began are sent too; harmless, as levels are absolute).
MAX_SKIPPED = 10_000
#: Events per read; a stream reads again at once while batches come back full.
BATCH = 200
#: How often the hub reads the xmin while streams wait for it to move (one query per
#: process, however many streams wait).
XMIN_POLL_S = 0.01
#: A waiting stream reads again on its own after this long (a safety net).
HELD_POLL_S = 1.0
#: A stream ends after this long; the client reconnects with Last-Event-ID, and its
#: credential is checked again (a revoked key or a suspended tenant stops streaming).
MAX_AGE_S = 600.0
#: How often an idle stream checks that its client is still connected: a client that
#: went frees its thread within this (else only at the next write, a ping).
CLIENT_CHECK_S = 1.0
#: How often a stream reads on its own while the hub's LISTEN session is down.
UNLISTENED_POLL_S = 1.0
IDLE_POLL_S = 0.5
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 15.0
_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in a tenant's outbox: after (xact_id, id). Python orders UUIDs as
    PostgreSQL does (bytewise, big-endian)."""

    xact: int
    id: uuid.UUID

    @classmethod
    def below(cls, xmin: int) -> Cursor:
        """Everything of transactions before `xmin` lies at or behind this cursor."""
        return cls(xmin - 1, _MAX_UUID)


@dataclass(frozen=True)
class Batch:
    #: The SSE frames of the events read, ready to send (built by PostgreSQL).
    frames: bytes
    count: int
    #: Where the next read starts: past the last event, or the watermark if further.
    cursor: Cursor
    full: bool
    #: The oldest transaction of committed events the watermark still holds back: they
    #: are served once the xmin has passed it (None: nothing held).
    held: int | None


# -- reads (each in a transaction pinned to the stream's tenant) ------------------------

_START = text("""
    WITH w AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
         seen AS (SELECT id, xact_id FROM webhooks.outbox_events, w
                   WHERE xact_id >= w.xmin AND event_type = ANY(:types)
                   LIMIT :limit)
    SELECT w.xmin::text AS xmin, ARRAY(SELECT id FROM seen) AS seen,
           (SELECT max(xact_id) FROM seen)::text AS seen_until
      FROM w
""")

_RESUME = text("""
    SELECT xact_id::text AS xact, occurred_at >= now() - make_interval(secs => :window) AS fresh
      FROM webhooks.outbox_events
     WHERE id = :id AND event_type = ANY(:types)
""")


@dataclass(frozen=True)
class Start:
    """Where a new stream begins, and the events above it it already saw."""

    cursor: Cursor
    seen: frozenset[uuid.UUID] = frozenset()
    #: The highest transaction among `seen`: once past it, nothing is left to skip.
    seen_until: int = 0


def start_position(conn: Connection, types: Sequence[str]) -> Start:
    """A new stream starts below the watermark, skipping the events above it that this
    snapshot already sees (committed before the stream began): what commits from now
    on is served. A transaction still open may have an id below events already
    committed, so the cursor alone could not say "from now"."""
    row = conn.execute(_START, {"types": list(types), "limit": MAX_SKIPPED}).one()
    seen_until = int(row.seen_until) if row.seen_until is not None else 0
    return Start(Cursor.below(int(row.xmin)), frozenset(row.seen), seen_until)


def resume_cursor(conn: Connection, event_id: uuid.UUID, types: Sequence[str]) -> Cursor | None:
    """The position after `event_id`, or None when it is unknown to this tenant (RLS),
    not a streamed type, or older than RESUME_WINDOW."""
    row = conn.execute(
        _RESUME,
        {"id": event_id, "types": list(types), "window": RESUME_WINDOW.total_seconds()},
    ).one_or_none()
    if row is None or not row.fresh:
        return None
    return Cursor(int(row.xact), event_id)


def _read_sql(filter_fields: int) -> str:
    # An event passes a filter when its data has that field with that value, or has
    # no such field (a stream filtered by location still gets an item's `stock.low`).
    filters = "".join(
        f" AND (NOT o.payload ? %(f{i})s OR o.payload->>%(f{i})s = %(v{i})s)"
        for i in range(filter_fields)
    )
    # One row, so that the read is one round trip with BEGIN, the pin and COMMIT
    # (erp.db.call_one, one flight), and the frames are built by PostgreSQL. One
    # statement, so the rows and the xmin come from one snapshot.
    return f"""
        WITH w AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
             e AS (SELECT o.id, o.event_type, o.payload, o.xact_id
                     FROM webhooks.outbox_events o, w
                    WHERE (o.xact_id, o.id) > (%(xact)s::xid8, %(id)s::uuid)
                      AND o.xact_id < w.xmin
                      AND o.event_type = ANY(%(types)s::text[])
                      AND o.id <> ALL(%(skip)s::uuid[]){filters}
                    ORDER BY o.xact_id, o.id
                    LIMIT %(limit)s)
        SELECT w.xmin::text,
               (SELECT min(h.xact_id) FROM webhooks.outbox_events h
                 WHERE h.xact_id >= w.xmin AND h.event_type = ANY(%(types)s::text[]))::text,
               (SELECT count(*) FROM e),
               (SELECT string_agg('id: ' || e.id || E'\nevent: ' || e.event_type
                                  || E'\ndata: ' || e.payload::text || E'\n\n',
                                  '' ORDER BY e.xact_id, e.id) FROM e),
               (SELECT e.xact_id::text || ' ' || e.id FROM e
                 ORDER BY e.xact_id DESC, e.id DESC LIMIT 1)
          FROM w
    """


_READS: dict[int, str] = {}


def read_batch(
    engine: Engine,
    tenant: uuid.UUID,
    after: Cursor,
    types: Sequence[str],
    filters: Mapping[str, str],
    skip: frozenset[uuid.UUID] = frozenset(),
    limit: int = BATCH,
) -> Batch:
    """The events after `after` that the watermark lets out, in commit-safe order, read
    in one short transaction pinned to `tenant` (one round trip; read-only, so it never
    takes a transaction id of its own)."""
    stmt = _READS.get(len(filters))
    if stmt is None:
        stmt = _READS.setdefault(len(filters), _read_sql(len(filters)))
    params: dict[str, Any] = {
        "xact": str(after.xact),
        "id": str(after.id),
        "types": pg_array_text(types),
        "skip": pg_array(skip),
        "limit": limit,
    }
    for i, (name, value) in enumerate(filters.items()):
        params[f"f{i}"], params[f"v{i}"] = name, value
    with tenant_context(tenant), one_flight_scope(), TenantSession(bind=engine) as s:
        xmin, held, count, frames, last = call_one(s, stmt, params)
    full = count >= limit
    cursor = after
    if last is not None:
        last_xact, last_id = last.split(" ")
        cursor = Cursor(int(last_xact), uuid.UUID(last_id))
    if not full:
        cursor = max(cursor, Cursor.below(int(xmin)))  # nothing below the watermark remains
    return Batch((frames or "").encode(), count, cursor, full, None if held is None else int(held))


def pg_array_text(values: Sequence[str]) -> str:
    """A text[] literal of plain names (event types: letters, digits, dots, underscores)."""
    if not all(v.replace(".", "").replace("_", "").isalnum() for v in values):
        raise ValueError("not plain names")
    return "{" + ",".join(values) + "}"


@dataclass
class _Flight:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Batch | None = None


class SharedReads:
    """Identical reads of one tenant's streams, done once.

    A commit rings every stream of its tenant at once, and streams at the same cursor
    with the same filters would all run the same statement, pinned to the same tenant,
    for the same answer. A stream takes the answer of a read of its key that *began
    after it was rung* (that read's snapshot sees what rang it), in flight or just
    done; otherwise it reads itself. RLS still decides every answer: each read is
    pinned to the one tenant of its key.
    """

    KEEP_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Any, _Flight] = {}
        self.reads = 0
        self.shared = 0

    def read(self, key: Any, not_before: float, fn: Callable[[], Batch]) -> Batch:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and flight.started >= not_before:
                self.shared += 1
                lead = False
            else:
                flight = _Flight(time.monotonic())
                self._flights[key] = flight
                self.reads += 1
                lead = True
                self._prune(flight.started)
        if lead:
            try:
                flight.result = fn()
            finally:
                flight.done.set()
        else:
            flight.done.wait()
        if flight.result is None:  # the leader's read failed: read alone
            return fn()
        return flight.result

    def _prune(self, now: float) -> None:
        if len(self._flights) > 64:
            for key in [k for k, f in self._flights.items() if f.started < now - self.KEEP_S]:
                del self._flights[key]


shared_reads = SharedReads()


# -- the hub: one LISTEN session per process ---------------------------------------------


class Subscription:
    """A stream's doorbell: set when its tenant's events may have changed."""

    def __init__(self, hub: Hub, tenant: uuid.UUID) -> None:
        self.hub = hub
        self.tenant = tenant
        self.bell = threading.Event()
        #: When it was last rung (time.monotonic): a read begun after it sees what rang.
        self.rung_at = 0.0

    def ring(self) -> None:
        self.rung_at = time.monotonic()
        self.bell.set()

    def close(self) -> None:
        self.hub.unsubscribe(self)


@dataclass
class Hub:
    """LISTEN erp_stream on one session; ring the subscriptions of each tenant named.

    Started by the first subscriber (after gunicorn's fork, so each worker process has
    its own); it reconnects with backoff, and rings every subscription on each
    (re)connect, since notifications sent while nobody listened are lost.
    """

    url: str
    subscribers: dict[uuid.UUID, set[Subscription]] = field(default_factory=dict)
    listening: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    notifications: int = 0
    #: Streams whose next events wait for the xmin to pass a transaction id.
    waiters: dict[Subscription, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def subscribe(self, tenant: uuid.UUID) -> Subscription:
        sub = Subscription(self, tenant)
        with self._lock:
            self.subscribers.setdefault(tenant, set()).add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self.run, name="erp-stream-hub", daemon=True)
                self._thread.start()
        return sub

    def wait_for_xmin(self, sub: Subscription, xact: int) -> None:
        """Ring `sub` once every transaction up to `xact` has ended (the watermark moved
        past it): no notification will say so, the transaction holding it back may be
        another tenant's, or not write the outbox at all."""
        with self._lock:
            self.waiters[sub] = xact

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self.waiters.pop(sub, None)
            subs = self.subscribers.get(sub.tenant)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.subscribers[sub.tenant]

    def count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self.subscribers.values())

    def ring(self, tenants: set[uuid.UUID] | None) -> None:
        """Wake the streams of `tenants` (None: every stream)."""
        with self._lock:
            if tenants is None:
                subs = [s for group in self.subscribers.values() for s in group]
            else:
                subs = [s for t in tenants for s in self.subscribers.get(t, ())]
        for sub in subs:
            sub.ring()

    def run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="erp stream hub",
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self.ring(None)  # catch up what committed while nobody listened
                    backoff = BACKOFF_MIN_S
                    self._listen(conn)
            except psycopg.Error as exc:
                log.warning(
                    "stream hub lost its LISTEN session; reconnecting",
                    extra={"error": str(exc).strip(), "retry_in_s": round(backoff, 2)},
                )
            finally:
                self.listening.clear()
            if self.stop.wait(backoff * random.uniform(0.8, 1.2)):
                break
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        with psycopg.connect(
            self.url, autocommit=True, connect_timeout=5, application_name="erp stream xmin"
        ) as probe:
            while not self.stop.is_set():
                named: set[uuid.UUID] = set()
                timeout = XMIN_POLL_S if self.waiters else IDLE_POLL_S
                for note in conn.notifies(timeout=timeout, stop_after=1):
                    named.add(uuid.UUID(note.payload))
                if named:
                    for note in conn.notifies(timeout=0):  # whatever else already arrived
                        named.add(uuid.UUID(note.payload))
                    self.notifications += len(named)
                    self.ring(named)
                if self.waiters:
                    self._ring_passed(probe)

    def _ring_passed(self, probe: psycopg.Connection[Any]) -> None:
        """One global read of the xmin for every waiting stream of the process."""
        row = probe.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
        xmin = int(row[0]) if row else 0
        with self._lock:
            passed = [sub for sub, xact in self.waiters.items() if xact < xmin]
            for sub in passed:
                del self.waiters[sub]
        for sub in passed:
            sub.ring()


def client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its connection: readable, with nothing to read. An SSE
    client sends nothing after its request, so anything else counts as still there."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def hub_for(url: str) -> Hub:
    """The process's hub for `url` (one LISTEN session, however many streams)."""
    with _hubs_lock:
        hub = _hubs.get(url)
        if hub is None:
            hub = _hubs[url] = Hub(url)
        return hub


def stop_hubs() -> None:
    """Stop every hub of this process (tests, before their database goes)."""
    with _hubs_lock:
        hubs = list(_hubs.values())
        _hubs.clear()
    for hub in hubs:
        hub.stop.set()
        hub.ring(None)  # their streams end
        if hub._thread is not None:
            hub._thread.join(IDLE_POLL_S * 4)


# -- the stream -----------------------------------------------------------------------


class Gate:
    """At most `limit` streams at once in this process, so that streams never hold every
    worker thread (erp/inventory/stream.py answers 503 beyond it)."""

    def __init__(self) -> None:
        self.active = 0
        self._lock = threading.Lock()

    def enter(self, limit: int) -> bool:
        with self._lock:
            if self.active >= limit:
                return False
            self.active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


gate = Gate()


@dataclass
class Stream:
    """One client's stream: its tenant, what it serves, and where it stands."""

    engine: Engine
    sub: Subscription
    types: tuple[str, ...]
    filters: Mapping[str, str]
    cursor: Cursor
    reset: bool = False
    ping_s: float = PING_S
    #: Events the stream saw committed when it began: never sent.
    skip: frozenset[uuid.UUID] = frozenset()
    #: The highest transaction among `skip` (past it, nothing is left to skip).
    skip_until: int = 0
    #: The client's connection (the WSGI server's), to notice a client that went.
    client: socket.socket | None = None
    max_age_s: float = MAX_AGE_S

    def read(self, not_before: float) -> Batch:
        if self.skip and self.cursor.xact > self.skip_until:
            self.skip = frozenset()

        def read() -> Batch:
            return read_batch(
                self.engine, self.sub.tenant, self.cursor, self.types, self.filters, self.skip
            )

        if self.skip:
            return read()
        key = (self.sub.tenant, self.cursor, self.types, tuple(sorted(self.filters.items())))
        return shared_reads.read(key, not_before, read)

    def frames(self) -> Iterator[bytes]:
        """The response body. It never ends on its own: the server closes it when the
        client goes (a write fails, at the latest at the next ping), and the route's
        on-close hook then unsubscribes."""
        yield b"retry: 2000\n\n"  # sends the headers now; clients retry after 2 s
        if self.reset:
            yield b"event: reset\ndata: {}\n\n"
        last_write = ends = time.monotonic()
        ends += self.max_age_s
        while not self.sub.hub.stop.is_set() and time.monotonic() < ends:
            self.sub.bell.clear()  # a ring during the read below reads again
            # a read begun after the last ring sees what rang; with no ring, only a
            # read from now on will do
            rung = self.sub.rung_at
            batch = self.read(rung if rung and time.monotonic() - rung < 1.0 else time.monotonic())
            self.cursor = batch.cursor
            if batch.frames:
                yield batch.frames
                last_write = time.monotonic()
            if batch.full:
                continue
            if batch.held is not None:
                self.sub.hub.wait_for_xmin(self.sub, batch.held)
            while True:
                listening = self.sub.hub.listening.is_set()
                timeout = self.ping_s - (time.monotonic() - last_write)
                if batch.held is not None:
                    timeout = min(timeout, HELD_POLL_S)
                if not listening:
                    timeout = min(timeout, UNLISTENED_POLL_S)
                if self.client is not None:
                    timeout = min(timeout, CLIENT_CHECK_S)
                timeout = min(timeout, ends - time.monotonic())
                if self.sub.bell.wait(max(timeout, 0.0)):
                    break
                if self.client is not None and client_gone(self.client):
                    return
                if time.monotonic() - last_write >= self.ping_s:
                    yield b": ping\n\n"
                    last_write = time.monotonic()
                if batch.held is not None or not listening or time.monotonic() >= ends:
                    break  # time to read again on our own, or to end
