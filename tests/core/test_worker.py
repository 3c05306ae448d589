"""`erp worker`'s non-forking model (erp/worker.py): up to `threads` jobs at once, each
in a thread; a job taken only when a thread is free; burst mode waits for what running
jobs queue; warm shutdown finishes the jobs in hand. Real Redis, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from erp.cli import main
from erp.config import Settings
from erp.extensions import queue
from erp.http import ErpFlask
from erp.worker import ThreadedWorker, make_worker
from tests.core import jobs_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker(q: Queue, threads: int) -> ThreadedWorker:
    return ThreadedWorker([q], threads=threads, connection=q.connection, serializer=JSONSerializer)


@pytest.fixture
def barrier() -> Iterator[str]:
    name = uuid.uuid4().hex
    jobs_fixture.active.update(now=0, peak=0)
    yield name
    jobs_fixture.rendezvous.pop(name, None)


def test_jobs_run_at_once_up_to_the_thread_count(
    app: ErpFlask, default_queue: Queue, barrier: str
) -> None:
    """Six jobs that each wait for two others: they pass only three at a time, and the
    worker never runs more than its three threads."""
    jobs_fixture.rendezvous[barrier] = threading.Barrier(3, timeout=30)
    jobs = [default_queue.enqueue("tests.core.jobs_fixture.meet", barrier) for _ in range(6)]
    assert _worker(default_queue, threads=3).work(burst=True)
    assert [j.get_status(refresh=True) for j in jobs] == ["finished"] * 6
    assert jobs_fixture.active["peak"] == 3


def test_one_thread_runs_one_job_at_a_time(
    app: ErpFlask, default_queue: Queue, barrier: str
) -> None:
    """The same rendezvous for two with one thread: the first job waits alone and fails
    (its barrier times out), so the second never meets it either."""
    jobs_fixture.rendezvous[barrier] = threading.Barrier(2, timeout=0.5)
    jobs = [default_queue.enqueue("tests.core.jobs_fixture.meet", barrier) for _ in range(2)]
    _worker(default_queue, threads=1).work(burst=True)
    assert [j.get_status(refresh=True) for j in jobs] == ["failed", "failed"]
    assert jobs_fixture.active["peak"] == 1


def test_a_failing_job_is_recorded_and_the_others_run(app: ErpFlask, default_queue: Queue) -> None:
    bad = default_queue.enqueue("tests.core.jobs_fixture.fail")
    good = default_queue.enqueue("tests.core.jobs_fixture.noop", 1)
    _worker(default_queue, threads=2).work(burst=True)
    assert bad.get_status(refresh=True) == "failed"
    assert "this job fails" in (bad.latest_result().exc_string or "")  # type: ignore[union-attr]
    assert good.get_status(refresh=True) == "finished"
    assert default_queue.started_job_registry.count == 0


def test_burst_runs_what_running_jobs_enqueue(app: ErpFlask, default_queue: Queue) -> None:
    """The queue is empty while the first link runs; burst mode still runs the links
    it queues, to the end of the chain."""
    prefix = f"{queue.prefix}:test-chain:{uuid.uuid4().hex}"
    default_queue.enqueue("tests.core.jobs_fixture.chain", prefix, "default", 5)
    _worker(default_queue, threads=4).work(burst=True)
    assert [int(x) for x in queue.redis.lrange(f"{prefix}:chain", 0, -1)] == [5, 4, 3, 2, 1]
    queue.redis.delete(f"{prefix}:chain")


def test_threads_zero_is_rqs_forking_worker(app: ErpFlask) -> None:
    assert type(make_worker(0)) is Worker
    threaded = make_worker(8)
    assert isinstance(threaded, ThreadedWorker)
    assert threaded.threads == 8


def test_worker_threads_setting_and_flag() -> None:
    assert Settings.from_env({}).worker_threads == 16
    assert Settings.from_env({"WORKER_THREADS": "0"}).worker_threads == 0
    with pytest.raises(ValueError, match="WORKER_THREADS"):
        Settings.from_env({"WORKER_THREADS": "-1"})
    out = CliRunner().invoke(main, ["worker", "--help"])
    assert out.exit_code == 0
    assert "--threads" in out.output
    bad = CliRunner().invoke(main, ["worker", "--threads", "-2"])
    assert bad.exit_code == 2


def _start(settings: Settings, threads: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,  # the test jobs (tests.core.jobs_fixture)
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "QUEUE_PREFIX": settings.queue_prefix,
        "LOG_LEVEL": "WARNING",
    }
    erp = os.path.join(os.path.dirname(sys.executable), "erp")
    return subprocess.Popen(
        [erp, "worker", "--threads", str(threads)],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _until(done: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_finishes_the_jobs_in_hand_and_takes_no_more(
    app: ErpFlask, default_queue: Queue, settings: Settings
) -> None:
    """A real `erp worker --threads 2` with two jobs in hand gets SIGTERM: both finish,
    the third queued job stays queued for another worker, and the process exits 0."""
    key = f"{queue.prefix}:test-hold:{uuid.uuid4().hex}"
    for i in range(2):
        default_queue.enqueue("tests.core.jobs_fixture.hold", f"{key}:{i}", 5.0)
    proc = _start(settings, threads=2)
    try:
        _until(
            lambda: all(queue.redis.exists(f"{key}:{i}:started") for i in range(2)),
            "the worker did not start both jobs",
        )
        waiting = default_queue.enqueue("tests.core.jobs_fixture.hold", f"{key}:2", 0.0)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert all(queue.redis.exists(f"{key}:{i}:done") for i in range(2))
    assert not queue.redis.exists(f"{key}:2:started")
    assert waiting.get_status(refresh=True) == "queued"
    # it said goodbye (workers of other tests, SIGKILLed, may linger in the registry)
    assert proc.pid not in {w.pid for w in Worker.all(queue=default_queue)}
