"""`erp scheduler`: enqueue periodic work on its interval; one active per deployment.

The core's tasks and every domain's (`Registry.every`) are enqueued as RQ jobs (by
dotted name, no arguments) on their interval. Several scheduler processes may run
(rolling deploys, replicas): the one holding a session-level PostgreSQL advisory
lock leads, the others wait to take over. A job may therefore run twice around a
hand-over, and every periodic job is written to be safe to run twice.

The lock needs a session-level connection: direct to PostgreSQL, or through a
pgbouncer in *session* mode, never transaction mode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from erp.jobs import JobQueue
from erp.registry import PeriodicTask, registry

log = logging.getLogger("erp.scheduler")

#: pg_advisory_lock key of the leader (an arbitrary constant, the same in every process).
LEADER_LOCK = 0x45_52_50_5F_53_43_48  # "ERP_SCH"

CORE_TASKS: tuple[PeriodicTask, ...] = (
    PeriodicTask("idempotency.purge_expired", "erp.idempotency.purge_expired", timedelta(hours=1)),
)


def periodic_tasks() -> list[PeriodicTask]:
    """The core's periodic tasks and those the domains registered."""
    return [*CORE_TASKS, *registry().periodic.values()]


class Scheduler:
    """Leadership by advisory lock, and the interval bookkeeping of the tasks."""

    def __init__(
        self,
        engine: Engine,
        queue: JobQueue,
        tasks: Iterable[PeriodicTask],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.tasks = list(tasks)
        self.clock = clock
        self._lock_conn: Connection | None = None
        self._last: dict[str, float] = {}

    @property
    def leading(self) -> bool:
        return self._lock_conn is not None

    def try_lead(self) -> bool:
        """Take the leader lock if it is free; keep it while this connection lives."""
        if self._lock_conn is not None:
            return self._still_leading()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}).scalar()
        if got:
            self._lock_conn = conn
            self._last.clear()  # a new leader runs every task once at once
            log.info("scheduler leads")
            return True
        conn.close()
        return False

    def _still_leading(self) -> bool:
        assert self._lock_conn is not None
        try:
            self._lock_conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:  # the session (and with it the lock) is gone
            log.warning("scheduler lost its leader connection")
            self.step_down()
            return False

    def step_down(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            if not conn.invalidated:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
        except SQLAlchemyError:
            pass  # a dead session holds no lock
        finally:
            conn.invalidate()  # never hand a session that held the lock back to the pool
            conn.close()

    def tick(self) -> list[str]:
        """Enqueue the tasks that are due; returns their names. Only the leader enqueues."""
        if not self.leading:
            return []
        now = self.clock()
        due = [
            t
            for t in self.tasks
            if t.name not in self._last or now - self._last[t.name] >= t.every.total_seconds()
        ]
        for task in due:
            self.queue.enqueue(task.func, queue=task.queue)
            self._last[task.name] = now
        return [t.name for t in due]

    def run(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Until `stop` is set: lead when possible, enqueue what is due."""
        try:
            while not stop.is_set():
                try:
                    if self.try_lead():
                        for name in self.tick():
                            log.info("enqueued periodic task", extra={"task": name})
                except Exception:  # the database or Redis is away: try again later
                    log.exception("scheduler tick failed")
                    self.step_down()
                stop.wait(poll)
        finally:
            self.step_down()


def run_scheduler(settings: Any, stop: threading.Event | None = None) -> None:
    """The `erp scheduler` process."""
    import signal

    from erp.db import make_engine
    from erp.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    queue = JobQueue()
    queue.configure(settings.redis_url, settings.queue_prefix)
    try:
        Scheduler(engine, queue, periodic_tasks()).run(stop)
    finally:
        engine.dispose()
