"""`erp scheduler`: one leader by advisory lock; due tasks enqueued on their interval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import Engine

from erp.cli import main
from erp.config import Settings
from erp.db import make_engine
from erp.extensions import queue
from erp.http import ErpFlask
from erp.registry import PeriodicTask
from erp.scheduler import CORE_TASKS, Scheduler, periodic_tasks

HOURLY = PeriodicTask("t.hourly", "tests.core.jobs_fixture.noop", timedelta(hours=1))
MINUTELY = PeriodicTask("t.minutely", "tests.core.jobs_fixture.noop", timedelta(minutes=1))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    e = make_engine(settings, pool_size=2, max_overflow=2)
    yield e
    e.dispose()


def _scheduler(engine: Engine, clock: Clock) -> Scheduler:
    return Scheduler(engine, queue, [HOURLY, MINUTELY], clock=clock)


def test_one_scheduler_leads_and_another_takes_over_when_it_steps_down(
    app: ErpFlask, engine: Engine, default_queue: Queue
) -> None:
    clock = Clock()
    with app.app_context():
        first, second = _scheduler(engine, clock), _scheduler(engine, clock)
        try:
            assert first.try_lead()
            assert not second.try_lead()
            assert second.tick() == []  # a follower enqueues nothing
            assert first.try_lead()  # still leading: its session holds the lock
            first.step_down()
            assert second.try_lead()
            assert not first.try_lead()
        finally:
            first.step_down()
            second.step_down()


def test_due_tasks_are_enqueued_once_per_interval(
    app: ErpFlask, engine: Engine, default_queue: Queue
) -> None:
    clock = Clock()
    with app.app_context():
        leader = _scheduler(engine, clock)
        try:
            assert leader.try_lead()
            assert sorted(leader.tick()) == ["t.hourly", "t.minutely"]
            assert leader.tick() == []
            clock.now += 61
            assert leader.tick() == ["t.minutely"]
            clock.now += 3600
            assert sorted(leader.tick()) == ["t.hourly", "t.minutely"]
        finally:
            leader.step_down()
    jobs = default_queue.get_jobs()
    assert len(jobs) == 5
    assert {j.func_name for j in jobs} == {"tests.core.jobs_fixture.noop"}


def test_a_leader_whose_session_died_steps_down(
    app: ErpFlask, engine: Engine, default_queue: Queue
) -> None:
    clock = Clock()
    with app.app_context():
        leader, other = _scheduler(engine, clock), _scheduler(engine, clock)
        try:
            assert leader.try_lead()
            assert leader._lock_conn is not None
            pid = leader._lock_conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
                conn.rollback()
            assert not leader.try_lead()  # it notices, and lets go
            assert other.try_lead()
        finally:
            leader.step_down()
            other.step_down()


def test_the_core_sweeps_idempotency_records_every_hour() -> None:
    assert CORE_TASKS[0].func == "erp.idempotency.purge_expired"
    assert CORE_TASKS[0].every == timedelta(hours=1)
    assert {t.name for t in periodic_tasks()} >= {"idempotency.purge_expired"}


def test_erp_scheduler_is_a_command() -> None:
    result = CliRunner().invoke(main, ["scheduler", "--help"])
    assert result.exit_code == 0
    assert "leader" in result.output
