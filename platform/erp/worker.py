"""`erp worker`: an RQ worker on every queue, JSON serializer, scheduler on.

Two worker models (WORKER_THREADS, `erp worker --threads`):

- `ThreadedWorker` (the default, `threads` >= 1): one process that never forks for a
  job; it runs up to `threads` jobs at once, each in a thread of its pool. A job that
  waits on the network (a webhook endpoint taking 10 s) holds one thread, not the
  process: the other threads go on taking jobs. It takes a job off the queue only when
  a thread is free to run it, so a busy process leaves the queue to the others. Job
  timeouts are enforced per thread (`TimerDeathPenalty`); warm shutdown (SIGTERM)
  takes no new job and waits for the jobs in hand; a second SIGTERM exits at once
  (like SIGKILL: what was in hand is redone after its lease, DESIGN.md §4).
- RQ's forking `Worker` (`threads` = 0): a work horse forked per job, one job at a
  time; its fork caps a process near 26 jobs/s here. Kept for comparison (bench/) and
  as a fallback.

Measured in bench/README.md ("The webhooks scenarios"): with one endpoint answering
in 10 s beside the others, two forking workers lose one of two processes to it.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from erp.config import Settings
from erp.db import assert_unprivileged, make_engine
from erp.extensions import db, queue
from erp.logs import configure_logging

log = logging.getLogger("erp.worker")

#: How often a worker waiting for a free thread renews its heartbeat.
_WAIT_S = 5.0


class ThreadedWorker(SimpleWorker):
    """A non-forking RQ worker running up to `threads` jobs at once in threads."""

    death_penalty_class = TimerDeathPenalty  # SIGALRM works in the main thread only

    def __init__(self, queues: Any, *, threads: int, **kwargs: Any) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        super().__init__(queues, **kwargs)
        self.threads = threads
        self._free = threading.Semaphore(threads)
        self._done = threading.Condition()
        self._running = 0
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erp-job")
        #: True while the main thread blocks where a stop may interrupt it (waiting for
        #: a thread or for a job): SIGTERM then raises StopRequested there at once.
        self._interruptible = False

    @property
    def running(self) -> int:
        """Jobs being performed now."""
        with self._done:
            return self._running

    # -- taking jobs ---------------------------------------------------------------

    def _wait_for_thread(self) -> None:
        self._interruptible = True
        try:
            while not self._free.acquire(timeout=_WAIT_S):
                self.heartbeat()
        finally:
            self._interruptible = False

    def _wait_for_a_job_to_end(self) -> None:
        self._interruptible = True
        try:
            with self._done:
                if self._running:
                    self._done.wait(timeout=_WAIT_S)
        finally:
            self._interruptible = False

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """A job only once a thread is free to run it (until then it stays queued, for
        any other worker). In burst mode (`timeout` None) the queues being empty ends
        the work only when no job is running either: a running job may queue more."""
        self._wait_for_thread()
        try:
            while True:
                self._interruptible = True
                try:
                    result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                finally:
                    self._interruptible = False
                if result is None and timeout is None and self.running:
                    self._wait_for_a_job_to_end()
                    continue
                break
        except BaseException:
            self._free.release()
            raise
        if result is None:
            self._free.release()
        return result

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Hand the job to a free thread (reserved by the dequeue) and return."""
        try:
            execution = self.prepare_execution(job)
            with self._done:
                self._running += 1
            self._pool.submit(self._perform, job, queue, execution)
        except BaseException:
            self._free.release()
            raise

    def _perform(self, job: Job, queue: Queue, execution: Execution) -> None:
        try:
            self.perform_job(job, queue, execution)  # records success or failure itself
        except Exception:  # RQ's own bookkeeping failed (e.g. Redis went away)
            log.exception("job %s: the worker could not record its outcome", job.id)
        finally:
            with self._done:
                self._running -= 1
                self._done.notify_all()
            self._free.release()

    # -- stopping ------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Warm shutdown: take no new job; the jobs in hand finish (`teardown`)."""
        self._stop_requested = True
        self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]
        if self._interruptible:
            raise StopRequested()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Cold shutdown (a second SIGTERM or SIGINT): exit now. The jobs in hand end
        as after SIGKILL: their leases run out and the sweep has them redone."""
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            log.warning("cold shutdown with %d job(s) in hand", self.running)
            try:
                self.register_death()  # type: ignore[no-untyped-call]
            finally:
                os._exit(1)

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)  # the jobs in hand finish first
        super().teardown()  # type: ignore[no-untyped-call]


def make_worker(threads: int) -> Worker | ThreadedWorker:
    """The worker `erp worker` runs on every queue (`queue` configured)."""
    if threads == 0:
        return Worker(queue.queues(), connection=queue.redis, serializer=JSONSerializer)
    return ThreadedWorker(
        queue.queues(), threads=threads, connection=queue.redis, serializer=JSONSerializer
    )


def run_worker(settings: Settings, burst: bool = False, threads: int | None = None) -> bool:
    configure_logging(settings.log_level, settings.log_json)
    threads = settings.worker_threads if threads is None else threads
    probe = make_engine(settings, pool_size=1, max_overflow=0)
    try:  # refuse before this login becomes the process's database
        assert_unprivileged(probe)
    finally:
        probe.dispose()
    # Forking: the work horses connect lazily, after the fork. Threaded: a connection
    # per thread at least, so no job waits for another's.
    db.configure(settings.replace(db_pool_size=max(settings.db_pool_size, threads)))
    queue.configure(settings.redis_url, settings.queue_prefix)
    return bool(make_worker(threads).work(with_scheduler=True, burst=burst))
