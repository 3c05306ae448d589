"""The push path: `erp webhooks listen` dispatches a tenant as soon as its events commit.

A trigger on `webhooks.dispatch` (policies/webhooks_notify.sql) sends
`NOTIFY erp_webhooks, '<tenant id>'`; PostgreSQL delivers it at commit only, once per
transaction and tenant. The listener holds a LISTEN session on LISTEN_DATABASE_URL
(default DATABASE_URL; a direct connection, never pgbouncer in transaction mode, which
would hand the session to other clients), and for each notification runs the same
per-tenant dispatch as the sweep (`dispatcher.dispatch_tenant`: fan-out with FOR UPDATE
SKIP LOCKED, delivery jobs enqueued after commit). Notifications arriving within
WINDOW_S of the first are handled together, one dispatch per tenant.

The tenants named are checked against the discovery function (active tenants with work
only), so a suspended tenant's deliveries stay paused, and a tenant a second listener
has already drained is skipped. Any number of listeners may run: the claims make two
dispatches of one tenant safe, and the delivery lease keeps two jobs from attempting a
message twice.

The periodic sweep (`erp scheduler`, every 2 s) stays the safety net: NOTIFY is not
durable. When the LISTEN session drops, the listener reconnects with backoff and runs
one sweep, since the notifications sent meanwhile are lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import psycopg

from erp.config import Settings
from erp.webhooks import dispatcher

log = logging.getLogger("erp.webhooks.listener")

CHANNEL = "erp_webhooks"
#: Notifications arriving this soon after the first one are dispatched together.
WINDOW_S = 0.005
#: How often an idle listener checks whether it should stop.
IDLE_POLL_S = 0.5
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 15.0


def _tenant(payload: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(payload)
    except ValueError:
        return None


class Listener:
    """LISTEN erp_webhooks on one session; dispatch the tenants named; reconnect."""

    def __init__(
        self,
        url: str,
        *,
        dispatch: Callable[[uuid.UUID], object] = dispatcher.push_tenant,
        discover: Callable[[], Iterable[uuid.UUID]] = dispatcher.due_tenants,
        sweep: Callable[[], object] = dispatcher.sweep,
        window_s: float = WINDOW_S,
    ) -> None:
        self.url = url
        self.dispatch = dispatch
        self.discover = discover
        self.sweep = sweep
        self.window_s = window_s
        #: Set while the LISTEN session is up (after its catch-up sweep).
        self.listening = threading.Event()
        self.backend_pid: int | None = None
        self.connects = 0
        self.batches = 0
        self.dispatched = 0

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: listen, and reconnect (with backoff) when the session drops."""
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="erp webhooks listen",
                    # a peer that vanished without a FIN is noticed within ~1 min (TCP)
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.connects += 1
                    log.info("webhooks listener listening", extra={"pid": self.backend_pid})
                    # Events committed while nobody listened sent notifications to no one.
                    self._guarded("catch-up sweep", self.sweep)
                    self.listening.set()
                    backoff = BACKOFF_MIN_S
                    self._listen(conn, stop)
            except psycopg.Error as exc:
                log.warning(
                    "webhooks listener lost its session; reconnecting",
                    extra={"error": str(exc).strip(), "retry_in_s": round(backoff, 2)},
                )
            finally:
                self.listening.clear()
                self.backend_pid = None
            if stop.wait(backoff * random.uniform(0.8, 1.2)):
                break
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _listen(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        while not stop.is_set():
            named: set[uuid.UUID] = set()
            for note in conn.notifies(timeout=IDLE_POLL_S, stop_after=1):
                if (t := _tenant(note.payload)) is not None:
                    named.add(t)
            if not named:
                continue
            for note in conn.notifies(timeout=self.window_s):
                if (t := _tenant(note.payload)) is not None:
                    named.add(t)
            self.handle(named)

    def handle(self, named: set[uuid.UUID]) -> None:
        """Dispatch the named tenants that are active and still have work."""
        self.batches += 1
        due = self._guarded("discovery", lambda: set(self.discover()))
        if not isinstance(due, set):
            return  # the database is away: the sweep will find the work
        for tenant in sorted(named & due):
            self._guarded("dispatch", partial(self.dispatch, tenant))
            self.dispatched += 1

    @staticmethod
    def _guarded(what: str, fn: Callable[[], object]) -> object:
        """Run `fn`; a failure is logged and left to the sweep, never ends the listener."""
        try:
            return fn()
        except Exception:
            log.exception("webhooks listener: %s failed", what)
            return None


def run_listener(settings: Settings, stop: threading.Event | None = None) -> None:
    """The `erp webhooks listen` process."""
    import signal

    from erp.db import assert_unprivileged, make_engine
    from erp.extensions import db, queue
    from erp.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    probe = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        assert_unprivileged(probe)
    finally:
        probe.dispose()
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db.configure(settings, pool_size=2, max_overflow=0)
    queue.configure(settings.redis_url, settings.queue_prefix)
    started = time.monotonic()
    try:
        Listener(settings.listen_url()).run(stop)
    finally:
        db.dispose()
        log.info("webhooks listener stopped", extra={"ran_s": round(time.monotonic() - started)})
