"""RQ on Redis: queues, the JSON serializer, and tenant-scoped job entry points.

Jobs are enqueued only after the transaction that asked for them commits
(`enqueue_after_commit`); a job takes a tenant id and plain ids, opens its own
tenant-scoped transaction, and must be safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from uuid import UUID

from flask import Flask, current_app, has_app_context
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

from erp.db import TenantSession, db

log = logging.getLogger("erp.jobs")
P = ParamSpec("P")
T = TypeVar("T")

QUEUES = ("default", "webhooks", "orders")
_PENDING = "erp_jobs_after_commit"


class _Connection:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=5)
        self.prefix = prefix


class JobQueue:
    """Redis and the queue names; per app like `erp.db.Database`, with a process default."""

    _KEY = "erp_queue"

    def __init__(self) -> None:
        self._default: _Connection | None = None

    def configure(self, redis_url: str, prefix: str = "erp") -> None:
        self._default = _Connection(redis_url, prefix)

    def init_app(self, app: Flask, redis_url: str, prefix: str = "erp") -> None:
        conn = _Connection(redis_url, prefix)
        app.extensions[self._KEY] = conn
        if self._default is None:
            self._default = conn

    def _connection(self) -> _Connection:
        if has_app_context():
            bound: _Connection | None = current_app.extensions.get(self._KEY)
            if bound is not None:
                return bound
        if self._default is None:
            raise RuntimeError("the job queue is not configured")
        return self._default

    @property
    def redis(self) -> Redis:
        return self._connection().redis

    @property
    def prefix(self) -> str:
        return self._connection().prefix

    def queue(self, name: str = "default") -> Queue:
        return Queue(f"{self.prefix}-{name}", connection=self.redis, serializer=JSONSerializer)

    def queues(self) -> list[Queue]:
        return [self.queue(n) for n in QUEUES]

    def enqueue(self, func: str, *args: Any, queue: str = "default", **kwargs: Any) -> Any:
        return self.queue(queue).enqueue(func, *args, **kwargs)


#: The process's queue; `erp.extensions` re-exports it with the other extensions.
queue = JobQueue()


def enqueue_after_commit(s: Session, func: str, *args: Any, queue: str = "default") -> None:
    """Enqueue `func(*args)` (JSON-able args) once `s` commits for good.

    Jobs belong to the innermost transaction open when they were asked for: a savepoint
    (`begin_nested`) that rolls back drops its own jobs and keeps the ones queued before
    it; one that is released hands its jobs to the enclosing transaction; only the
    outermost commit enqueues, and the outermost rollback drops them all.
    """
    tx = s.get_nested_transaction() or s.get_transaction()
    pending: dict[Any, list[Any]] = s.info.setdefault(_PENDING, {})
    pending.setdefault(tx, []).append((func, args, queue))


def call_after_commit(s: Session, fn: Callable[[], None]) -> None:
    """Call `fn()` once `s` commits for good (same rules as `enqueue_after_commit`);
    for work outside the database that must follow the commit, never precede it."""
    tx = s.get_nested_transaction() or s.get_transaction()
    pending: dict[Any, list[Any]] = s.info.setdefault(_PENDING, {})
    pending.setdefault(tx, []).append((fn, (), None))


@event.listens_for(TenantSession, "after_commit")
def _flush_jobs(session: Session) -> None:
    pending: dict[Any, list[Any]] = session.info.get(_PENDING) or {}
    savepoint = session.get_nested_transaction()
    if savepoint is not None:  # RELEASE SAVEPOINT: the enclosing transaction owns them now
        jobs = pending.pop(savepoint, [])
        if jobs:
            pending.setdefault(savepoint.parent, []).extend(jobs)
        return
    session.info.pop(_PENDING, None)
    for jobs in pending.values():
        for func, args, qname in jobs:
            if callable(func):
                func()
                continue
            try:
                queue.enqueue(func, *args, queue=qname)
            except RedisError:
                # The transaction is committed: failing the request now would invite a
                # duplicate retry. What must not be lost goes through the outbox instead.
                log.exception("could not enqueue %s after commit", func)


@event.listens_for(TenantSession, "after_rollback")
def _drop_jobs(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(_PENDING, None)
    else:  # ROLLBACK TO SAVEPOINT: only what was queued inside it goes
        (session.info.get(_PENDING) or {}).pop(savepoint, None)


def tenant_job(
    fn: Callable[Concatenate[Session, P], T],
) -> Callable[Concatenate[str, P], T]:
    """Run `fn(session, ...)` in one committed transaction of tenant `tenant_id`."""

    @wraps(fn)
    def run(tenant_id: str, *args: P.args, **kwargs: P.kwargs) -> T:
        from erp.context import current_actor

        db.fork_safe()
        token = current_actor.set(f"system:job:{fn.__module__}.{fn.__name__}")
        try:
            return db.unit_of_work(lambda s: fn(s, *args, **kwargs), tenant=UUID(tenant_id))
        finally:
            current_actor.reset(token)

    return cast(Callable[Concatenate[str, P], T], run)
