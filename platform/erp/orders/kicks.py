"""Making sure a drain job will see a tenant's new inbound message (erp/orders/intake.py):
per-tenant Redis flags, one drain job per flag claimed (`kick`), and the thread each
API process hands its kicks to (`Kicks`), so a request makes no Redis call of its
own. Redis away, or a kick lost with its process: `erp scheduler`'s sweep enqueues
what is left `received`. No Flask here: the app whose queue to use is passed in.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from typing import Any

from redis.exceptions import RedisError

from erp.jobs import queue

log = logging.getLogger("erp.orders.intake")

QUEUE = "orders"
DRAIN_JOB = "erp.orders.jobs.drain"
#: Drain jobs per tenant queued or running at once (each claims with SKIP LOCKED), and
#: how long a flag outlives a job that died holding it.
DRAIN_SLOTS = 4
FLAG_TTL_S = 30


def drain_flag(tenant: uuid.UUID | str, slot: int) -> str:
    """The Redis key saying drain job `slot` of the tenant is queued or running."""
    return f"{queue.prefix}:orders:drain:{tenant}:{slot}"


#: Claim the first free flag of KEYS (SET NX EX ARGV[1]); its 1-based index, or 0.
_CLAIM_FLAG = """
for i, key in ipairs(KEYS) do
    if redis.call("SET", key, "1", "NX", "EX", ARGV[1]) then return i end
end
return 0
"""


def kick(tenant_id: uuid.UUID | str) -> bool:
    """Make sure a drain job will see the tenant's new message: claim the first free
    one of the DRAIN_SLOTS flags (one Redis call) and enqueue a drain job for it; none
    free: the jobs queued or running will see it (a drain re-checks after it clears
    its flag). Redis away: the sweep enqueues later, so the failure is only logged.
    True when a job was enqueued."""
    keys = [drain_flag(tenant_id, slot) for slot in range(DRAIN_SLOTS)]
    try:
        claimed = int(queue.redis.eval(_CLAIM_FLAG, len(keys), *keys, FLAG_TTL_S))
        if claimed:
            queue.enqueue(DRAIN_JOB, str(tenant_id), claimed - 1, queue=QUEUE)
            return True
    except RedisError:
        log.warning("could not enqueue an inbound message; the sweep will", exc_info=True)
    return False


#: How long the kicks thread lets a first message's kick wait for others to join it.
KICK_WINDOW_S = 0.005


class Kicks:
    """The hook's kicks, sent by one thread per process: a request hands its tenant
    over (a set insert) and answers without a Redis round trip of its own, and the
    kicks of the messages that arrive within KICK_WINDOW_S are one per tenant. A
    blocking call in the middle of a request cost more than the call (sequential
    load: 0.25 ms of the worker's CPU per message for a 0.04 ms Redis call). A kick
    lost with its process (killed before the thread sent it) is the sweep's, as one
    lost with Redis is."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        #: per Flask app (its Redis and queue prefix: `erp.jobs.queue` reads them from
        #: the app context), the tenants to kick
        self._pending: dict[Any, set[str]] = {}
        self._sending = 0
        self._wake = threading.Event()
        self._pid = 0

    def add(self, app: Any, tenant_id: uuid.UUID | str) -> None:
        """Kick the tenant soon, through the queue of `app` (the Flask app)."""
        with self._lock:
            self._pending.setdefault(app, set()).add(str(tenant_id))
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="erp-intake-kicks", daemon=True).start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(KICK_WINDOW_S)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the thread die: the sweep covers the kick
                log.exception("could not send the intake kicks; the sweep will")

    def flush(self) -> int:
        """Send the pending kicks now; how many tenants were kicked."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._sending += 1
        try:
            for app, tenants in batch.items():
                with app.app_context():
                    for tenant in tenants:
                        kick(tenant)
        finally:
            with self._lock:
                self._sending -= 1
                self._lock.notify_all()
        return sum(len(t) for t in batch.values())

    def forget_after_fork(self) -> None:
        """In a forked child: fresh locks, nothing pending, no thread yet."""
        self._lock = threading.Condition()
        self._pending = {}
        self._sending = 0
        self._wake = threading.Event()
        self._pid = 0

    def settle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every kick handed over so far has been sent (tests, shutdown)."""
        self.flush()
        with self._lock:
            return self._lock.wait_for(lambda: self._sending == 0, timeout_s)


kicks = Kicks()
os.register_at_fork(after_in_child=kicks.forget_after_fork)


@atexit.register
def _kicks_at_exit() -> None:
    """A process ending normally (gunicorn recycling a worker) sends what it holds."""
    try:
        kicks.settle(1.0)
    except Exception:  # at exit: whatever is left is the sweep's
        log.warning("intake kicks not sent at exit; the sweep will", exc_info=True)
