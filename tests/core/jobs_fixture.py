"""Test-only RQ jobs (enqueued by dotted path, run by an in-process worker)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.context import current_actor
from erp.jobs import tenant_job


@tenant_job
def visible_tenants(s: Session, label: str) -> dict[str, object]:
    """What a job of one tenant can see: tenant ids of every API key and audit row."""
    keys = s.execute(text("SELECT DISTINCT tenant_id::text FROM iam.api_keys")).scalars().all()
    audit = s.execute(text("SELECT DISTINCT tenant_id::text FROM iam.audit_log")).scalars().all()
    return {
        "label": label,
        "keys": sorted(keys),
        "audit": sorted(audit),
        "actor": current_actor.get(),
        "guc": s.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar_one(),
    }


def noop(*args: object) -> None:
    """A job that does nothing; its arguments are what the tests look at."""


# -- erp.worker.ThreadedWorker (tests/core/test_worker.py) ----------------------------

#: Jobs of one ThreadedWorker test running at once, and the most seen at once.
active = {"now": 0, "peak": 0}
_active_lock = threading.Lock()
#: Set by a test: the jobs `meet` wait there for each other.
rendezvous: dict[str, threading.Barrier] = {}


def meet(name: str) -> int:
    """Wait at the test's barrier until as many jobs as it counts have come: passes
    only when that many jobs run at once. Returns the job's arrival index."""
    with _active_lock:
        active["now"] += 1
        active["peak"] = max(active["peak"], active["now"])
    try:
        return rendezvous[name].wait()
    finally:
        with _active_lock:
            active["now"] -= 1


def fail() -> None:
    raise RuntimeError("this job fails")


def chain(prefix: str, queue_name: str, left: int) -> int:
    """Enqueue the next link (`left` - 1) before returning: a burst worker must run
    what a running job queued."""
    from erp.extensions import queue

    if left > 1:
        queue.enqueue(
            "tests.core.jobs_fixture.chain", prefix, queue_name, left - 1, queue=queue_name
        )
    queue.redis.rpush(f"{prefix}:chain", left)
    return left


def hold(key: str, seconds: float) -> str:
    """Mark `key` started in Redis, work `seconds`, mark it done (a real worker's job)."""
    from erp.extensions import queue

    queue.redis.set(f"{key}:started", 1, ex=300)
    time.sleep(seconds)
    queue.redis.set(f"{key}:done", 1, ex=300)
    return key
