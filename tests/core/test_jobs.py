"""RQ jobs: enqueued only after commit, JSON on the wire, tenant-scoped when they run."""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import text

from erp.errors import Problem
from erp.extensions import db, queue
from erp.http import ErpFlask
from erp.jobs import enqueue_after_commit
from tests.conftest import TenantHandle
from tests.core.conftest import AppFactory

NOOP = "tests.core.jobs_fixture.noop"


def _jobs(q: Queue) -> list[Job]:
    return list(q.get_jobs())


def test_enqueued_only_after_commit(app: ErpFlask, default_queue: Queue) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "a", 1)
        s.execute(text("SELECT 2"))
        assert _jobs(default_queue) == []
        s.commit()
    (job,) = _jobs(default_queue)
    assert job.func_name == NOOP
    assert job.args == ["a", 1]


def test_dropped_on_rollback(app: ErpFlask, default_queue: Queue) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "dropped")
        s.rollback()
        s.execute(text("SELECT 1"))
        s.commit()  # a later commit of the same session does not resurrect it
    assert _jobs(default_queue) == []


def _args(q: Queue) -> list[list[Any]]:
    return sorted(job.args for job in _jobs(q))


def test_a_rolled_back_savepoint_drops_only_its_own_jobs(
    app: ErpFlask, default_queue: Queue
) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "before")
        savepoint = s.begin_nested()
        enqueue_after_commit(s, NOOP, "inside")
        savepoint.rollback()
        assert _jobs(default_queue) == []
        enqueue_after_commit(s, NOOP, "after")
        s.commit()
    assert _args(default_queue) == [["after"], ["before"]]


def test_a_released_savepoint_enqueues_nothing_before_the_outer_commit(
    app: ErpFlask, default_queue: Queue
) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        with s.begin_nested():
            enqueue_after_commit(s, NOOP, "released")
            with s.begin_nested():
                enqueue_after_commit(s, NOOP, "deeper")
        assert _jobs(default_queue) == []  # RELEASE SAVEPOINT is not a commit
        s.commit()
    assert _args(default_queue) == [["deeper"], ["released"]]


def test_a_released_savepoint_inside_a_rolled_back_one_is_dropped_with_it(
    app: ErpFlask, default_queue: Queue
) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "kept")
        outer = s.begin_nested()
        with s.begin_nested():
            enqueue_after_commit(s, NOOP, "released into outer")
        outer.rollback()
        s.commit()
    assert _args(default_queue) == [["kept"]]


def test_the_outermost_rollback_drops_jobs_of_released_savepoints(
    app: ErpFlask, default_queue: Queue
) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "outer")
        with s.begin_nested():
            enqueue_after_commit(s, NOOP, "released")
        s.rollback()
        s.execute(text("SELECT 1"))
        s.commit()
    assert _jobs(default_queue) == []


def test_jobs_travel_as_json(app: ErpFlask, default_queue: Queue) -> None:
    with app.app_context(), db.new_session() as s:
        s.execute(text("SELECT 1"))
        enqueue_after_commit(s, NOOP, "x", {"n": 2})
        s.commit()
    (job,) = _jobs(default_queue)
    raw = default_queue.connection.hget(job.key, "data")
    assert raw is not None
    func, _instance, args, kwargs = json.loads(zlib.decompress(raw))
    assert (func, args, kwargs) == (NOOP, ["x", {"n": 2}], {})


@pytest.fixture
def enqueuing_app(make_app: AppFactory) -> ErpFlask:
    app = make_app()

    @app.post("/test/enqueue/<outcome>")
    def enqueue(outcome: str) -> Any:
        db.session.execute(text("SELECT 1"))
        enqueue_after_commit(db.session, NOOP, outcome)
        if outcome == "fail":
            raise Problem("conflict", "refused after enqueueing")
        return {"ok": True}

    return app


def test_a_request_enqueues_after_its_commit_and_not_on_failure(
    enqueuing_app: Flask,
) -> None:
    with enqueuing_app.app_context():
        q = queue.queue("default")
        q.empty()
        client = enqueuing_app.test_client()
        assert client.post("/test/enqueue/fail").status_code == 409
        assert list(q.get_jobs()) == []
        assert client.post("/test/enqueue/ok").status_code == 200
        assert [j.args for j in q.get_jobs()] == [["ok"]]
        q.empty()


def test_a_lost_queue_after_commit_does_not_fail_the_committed_request(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(redis_url="redis://127.0.0.1:1/0")

    @app.post("/test/enqueue")
    def enqueue() -> Any:
        db.session.execute(text("SELECT 1"))
        enqueue_after_commit(db.session, NOOP, "lost")
        return {"ok": True}

    with caplog.at_level(logging.ERROR, logger="erp.jobs"):
        r = app.test_client().post("/test/enqueue")
    assert r.status_code == 200
    assert any(
        rec.getMessage() == f"could not enqueue {NOOP} after commit" for rec in caplog.records
    )


def test_a_tenant_job_sees_only_its_tenant(
    app: ErpFlask, default_queue: Queue, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    job_a = default_queue.enqueue("tests.core.jobs_fixture.visible_tenants", str(tenant.id), "a")
    job_b = default_queue.enqueue(
        "tests.core.jobs_fixture.visible_tenants", str(other_tenant.id), "b"
    )
    worker = SimpleWorker(
        [default_queue], connection=default_queue.connection, serializer=JSONSerializer
    )
    assert worker.work(burst=True)
    results = {}
    for job in (job_a, job_b):
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED, job.latest_result()
        results[job.args[1]] = job.return_value()
    a, b = results["a"], results["b"]
    assert a["keys"] == [str(tenant.id)]
    assert a["audit"] == [str(tenant.id)]
    assert a["guc"] == str(tenant.id)
    assert b["keys"] == [str(other_tenant.id)]
    assert a["actor"] == "system:job:tests.core.jobs_fixture.visible_tenants"


def test_a_tenant_job_refuses_a_malformed_tenant(app: ErpFlask, default_queue: Queue) -> None:
    job = default_queue.enqueue("tests.core.jobs_fixture.visible_tenants", "not-a-uuid", "x")
    worker = SimpleWorker(
        [default_queue], connection=default_queue.connection, serializer=JSONSerializer
    )
    worker.work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
