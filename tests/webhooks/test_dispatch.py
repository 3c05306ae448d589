"""The dispatcher and the lease: no event lost, no attempt made twice, no tenant's event
sent to another; Redis loss, a dead worker and a paused tenant."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import Engine, text

from erp.config import Settings
from erp.db import db
from erp.http import ErpFlask
from erp.webhooks import delivery, dispatcher
from tests.conftest import TenantHandle
from tests.webhooks.conftest import (
    Receiver,
    create_endpoint,
    deliver_all,
    owner_sql,
    post_transaction,
    run_worker,
    start_erp_worker,
)

BASE = "/api/v1/webhooks/endpoints"


def _rows(owner_engine: Engine, sql: str, **params: Any) -> list[Any]:
    with owner_engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def _race(app: ErpFlask, n: int, fn: Callable[[], object]) -> list[object]:
    """Run `fn` in `n` threads released at once, each in the app's context (threads do
    not inherit it); their results (errors re-raised)."""
    barrier = threading.Barrier(n)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            with app.app_context():
                results.append(fn())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def test_the_outbox_trigger_queues_every_event_in_its_transaction(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    tx = post_transaction(client, tenant)
    (row,) = _rows(
        owner_engine,
        "SELECT d.id, o.payload->>'id' FROM webhooks.dispatch d "
        "JOIN webhooks.outbox_events o USING (tenant_id, id) WHERE d.tenant_id = :t",
        t=tenant.id,
    )
    assert row[1] == tx["id"]


def test_two_dispatchers_racing_make_each_message_once(
    app: ErpFlask,
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    create_endpoint(client, tenant, receiver.url)
    for _ in range(30):
        post_transaction(client, tenant, amount=7)
    _race(app, 2, lambda: dispatcher.dispatch_tenant(tenant.id))
    counts = _rows(
        owner_engine,
        "SELECT count(*), count(DISTINCT event_id) FROM webhooks.messages WHERE tenant_id = :t",
        t=tenant.id,
    )
    assert tuple(counts[0]) == (30, 30)
    assert (
        _rows(owner_engine, "SELECT 1 FROM webhooks.dispatch WHERE tenant_id = :t", t=tenant.id)
        == []
    )
    run_worker(hooks_queue)
    assert len(receiver.requests) == 30
    assert len(set(receiver.ids())) == 30


def test_two_deliverers_racing_never_attempt_a_message_twice(
    app: ErpFlask,
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(delay=0.02)
    create_endpoint(client, tenant, receiver.url)
    for _ in range(20):
        post_transaction(client, tenant, amount=3)
    dispatcher.dispatch_tenant(tenant.id)
    hooks_queue.empty()  # the racers below stand in for the jobs
    ids = [
        r[0]
        for r in _rows(
            owner_engine, "SELECT id FROM webhooks.messages WHERE tenant_id = :t", t=tenant.id
        )
    ]
    made = _race(app, 3, lambda: delivery.deliver(tenant.id, ids))
    assert sum(made) == 20  # type: ignore[arg-type]
    assert len(receiver.requests) == 20
    assert len(set(receiver.ids())) == 20
    attempts = _rows(
        owner_engine, "SELECT count(*) FROM webhooks.attempts WHERE tenant_id = :t", t=tenant.id
    )
    assert attempts[0][0] == 20


def test_duplicate_jobs_make_one_attempt(
    client: Any, tenant: TenantHandle, receiver: Receiver, hooks_queue: Queue
) -> None:
    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    dispatcher.dispatch_tenant(tenant.id)  # the message is due twice: two jobs
    assert hooks_queue.count == 2
    run_worker(hooks_queue)
    assert len(receiver.requests) == 1


def test_the_sweep_enqueues_nothing_for_an_endpoint_a_job_is_delivering_to(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    """A job holding a live lease on an endpoint takes what is due for it when its batch
    is done: the sweep queues jobs only for the other endpoints (with threads, jobs for
    a busy endpoint would each claim nothing while a backlog drains)."""
    busy, idle = make_receiver(), make_receiver()
    busy_id = create_endpoint(client, tenant, busy.url)["id"]
    create_endpoint(client, tenant, idle.url)
    post_transaction(client, tenant)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    hooks_queue.empty()
    owner_sql(  # a job is delivering the first of the busy endpoint's messages
        owner_engine,
        "UPDATE webhooks.messages SET lease_until = now() + interval '45 seconds' "
        "WHERE id = (SELECT id FROM webhooks.messages WHERE tenant_id = :t "
        "AND endpoint_id = :e ORDER BY created_at, id LIMIT 1)",
        t=tenant.id,
        e=busy_id,
    )
    dispatcher.dispatch_tenant(tenant.id)
    assert hooks_queue.count == 1  # the idle endpoint's job only
    run_worker(hooks_queue)
    assert len(idle.requests) == 2
    assert busy.requests == []
    owner_sql(
        owner_engine,
        "UPDATE webhooks.messages SET lease_until = NULL WHERE tenant_id = :t",
        t=tenant.id,
    )
    deliver_all(hooks_queue, tenant)  # the lease gone (its job died): both delivered
    assert len(busy.requests) == 2


def test_tenants_never_receive_each_others_events(
    client: Any,
    tenant: TenantHandle,
    other_tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
) -> None:
    mine, theirs = make_receiver(), make_receiver()
    a = create_endpoint(client, tenant, mine.url)
    b = create_endpoint(client, other_tenant, theirs.url)
    tx_a = post_transaction(client, tenant)
    tx_b = post_transaction(client, other_tenant)
    deliver_all(hooks_queue, tenant, other_tenant)
    assert next(r.body for r in mine.requests).count(tx_a["id"].encode()) == 1
    assert all(tx_b["id"].encode() not in r.body for r in mine.requests)
    assert all(tx_a["id"].encode() not in r.body for r in theirs.requests)
    assert len(mine.requests) == len(theirs.requests) == 1
    # A cannot read B's messages, attempts or events
    h = tenant.headers
    assert client.get(f"{BASE}/{b['id']}/attempts", headers=h).status_code == 404
    assert client.get(f"{BASE}/{b['id']}/messages", headers=h).status_code == 404
    b_event = theirs.requests[0].headers["webhook-id"]
    assert client.get(f"/api/v1/webhooks/events/{b_event}", headers=h).status_code == 404
    events = client.get("/api/v1/webhooks/events", headers=h).get_json()["items"]
    assert b_event not in {e["id"] for e in events}
    # nor retry B's message through its own endpoint
    (b_msg,) = client.get(f"{BASE}/{b['id']}/messages", headers=other_tenant.headers).get_json()[
        "items"
    ]
    r = client.post(f"{BASE}/{a['id']}/messages/{b_msg['id']}/retry", headers=h)
    assert r.status_code == 404


def test_redis_losing_the_jobs_loses_nothing(
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    assert hooks_queue.count == 1
    hooks_queue.empty()  # Redis flushed (this worker's queue only: others share the server)
    run_worker(hooks_queue)
    assert receiver.requests == []
    assert _sweep_only(monkeypatch, tenant) >= 1  # the sweep finds it due in PostgreSQL
    run_worker(hooks_queue)
    assert len(receiver.requests) == 1


def test_a_job_that_died_holding_a_lease_is_redone_after_the_lease(
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    hooks_queue.empty()
    # a job claims (leases) and dies before it records anything
    _, claimed = db.unit_of_work(
        lambda s: delivery.claim(s, uuid.UUID(endpoint["id"]), None), tenant=tenant.id
    )
    assert len(claimed) == 1
    dispatcher.dispatch_tenant(tenant.id)  # leased: not due for anyone else
    run_worker(hooks_queue)
    assert receiver.requests == []
    owner_sql(
        owner_engine,
        "UPDATE webhooks.messages SET lease_until = now() - interval '1 second' "
        "WHERE tenant_id = :t",
        t=tenant.id,
    )
    dispatcher.dispatch_tenant(tenant.id)
    run_worker(hooks_queue)
    assert len(receiver.requests) == 1


def _sweep_only(monkeypatch: pytest.MonkeyPatch, *tenants: TenantHandle) -> int:
    """The scheduler's sweep, its discovery narrowed to these tenants: the seeded
    tenants of the isolation suite may share this database and must keep their rows."""
    real = dispatcher.due_tenants
    ids = {t.id for t in tenants}
    monkeypatch.setattr(
        dispatcher, "due_tenants", lambda limit=500: [t for t in real(limit) if t in ids]
    )
    try:
        return dispatcher.sweep()
    finally:
        monkeypatch.setattr(dispatcher, "due_tenants", real)


def _suspend(client: Any, ops_headers: dict[str, str], tenant: TenantHandle) -> None:
    r = client.post(
        f"/ops/v1/tenants/{tenant.id}/suspend", json={"reason": "unpaid"}, headers=ops_headers
    )
    assert r.status_code == 200, r.get_json()


def test_a_suspended_tenants_deliveries_pause_and_resume(
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    ops_headers: dict[str, str],
    owner_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    _suspend(client, ops_headers, tenant)
    with owner_engine.connect() as conn:
        conn.execute(text("SET ROLE erp_app"))
        named = (
            conn.execute(text("SELECT * FROM app.tenants_with_due_webhooks(100000)"))
            .scalars()
            .all()
        )
    assert tenant.id not in named
    _sweep_only(monkeypatch, tenant)
    run_worker(hooks_queue)
    assert receiver.requests == []
    r = client.post(f"/ops/v1/tenants/{tenant.id}/reactivate", headers=ops_headers)
    assert r.status_code == 200
    _sweep_only(monkeypatch, tenant)
    run_worker(hooks_queue)
    assert len(receiver.requests) == 1


def test_discovery_names_tenant_ids_only(
    client: Any, tenant: TenantHandle, receiver: Receiver, app_engine: Engine
) -> None:
    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    with app_engine.connect() as conn:  # erp_app, no tenant pinned: RLS would hide every row
        rows = conn.execute(text("SELECT * FROM app.tenants_with_due_webhooks(100000)")).all()
        assert all(len(r) == 1 and isinstance(r[0], uuid.UUID) for r in rows)
        assert tenant.id in {r[0] for r in rows}
        assert conn.execute(text("SELECT count(*) FROM webhooks.dispatch")).scalar_one() == 0
        owner = conn.execute(
            text(
                "SELECT pg_get_userbyid(proowner), prosecdef, proconfig FROM pg_proc "
                "WHERE oid = 'app.tenants_with_due_webhooks(int)'::regprocedure"
            )
        ).one()
    assert owner[0] == "erp_auth"
    assert owner[1] is True
    assert "search_path=pg_catalog, pg_temp" in owner[2]


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_is_redelivered_after_recovery(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
    settings: Settings,
) -> None:
    """`erp worker` (a real process, threads as in production) is SIGKILLed while the receiver
    holds its request; once the lease runs out the sweep re-enqueues the message and it is
    delivered with the same webhook-id: at least once, the retry after an unknown outcome."""
    receiver = make_receiver(delay=30.0)
    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    worker = start_erp_worker(settings)
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.requests) == 1, "the worker never reached the receiver"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker (and a work horse, if forking)
        worker.wait(10)
    receiver.delay = 0.0
    (status,) = _rows(
        owner_engine, "SELECT status FROM webhooks.messages WHERE tenant_id = :t", t=tenant.id
    )
    assert status[0] == "pending"  # nothing recorded: the outcome is unknown
    owner_sql(
        owner_engine,
        "UPDATE webhooks.messages SET lease_until = now() - interval '1 second' "
        "WHERE tenant_id = :t",
        t=tenant.id,
    )
    hooks_queue.empty()
    dispatcher.dispatch_tenant(tenant.id)
    run_worker(hooks_queue)
    assert len(receiver.requests) == 2
    assert len(set(receiver.ids())) == 1
    (status,) = _rows(
        owner_engine, "SELECT status FROM webhooks.messages WHERE tenant_id = :t", t=tenant.id
    )
    assert status[0] == "delivered"


def test_the_purge_removes_a_tenants_webhook_rows(
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    ops_headers: dict[str, str],
    owner_url: str,
    owner_engine: Engine,
) -> None:
    from erp.tenancy.purge import purge_due

    create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    post_transaction(client, tenant)  # one event still waiting in dispatch
    tables = ("endpoints", "dispatch", "messages", "attempts", "outbox_events")
    count = " + ".join(f"(SELECT count(*) FROM webhooks.{t} WHERE tenant_id = :t)" for t in tables)
    assert _rows(owner_engine, f"SELECT {count}", t=tenant.id)[0][0] >= 6
    assert client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers).status_code == 202
    assert [tid for tid, _, _ in purge_due(owner_url, only=str(tenant.id))] == [tenant.id]
    assert _rows(owner_engine, f"SELECT {count}", t=tenant.id)[0][0] == 0


def test_a_slow_endpoint_gives_its_worker_back_after_each_attempt(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    """The first slow answer stops the job: the attempts in flight (IN_FLIGHT, started
    together) are recorded, the rest released for the next job, not attempted."""
    slow = make_receiver(delay=delivery.SLOW_ATTEMPT_MS / 1000 + 0.2)
    create_endpoint(client, tenant, slow.url)
    width = delivery.IN_FLIGHT
    for _ in range(width + 2):
        post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)  # one job for the messages
    assert hooks_queue.count == 1
    run_worker(hooks_queue)
    assert len(slow.requests) == width
    rows = _rows(
        owner_engine,
        "SELECT status, lease_until FROM webhooks.messages WHERE tenant_id = :t ORDER BY status",
        t=tenant.id,
    )
    assert [r[0] for r in rows] == ["delivered"] * width + ["pending", "pending"]
    assert all(r[1] is None for r in rows)  # released: due for the next job at once
    dispatcher.dispatch_tenant(tenant.id)
    run_worker(hooks_queue)
    assert len(slow.requests) == len(set(slow.ids())) == width + 2


@pytest.mark.slow
def test_a_slow_endpoint_holds_one_thread_and_the_others_are_delivered(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    settings: Settings,
) -> None:
    """One real `erp worker` process: while an endpoint holds its request for 30 s, a
    posting for another endpoint is delivered (a forking worker, one job at a time,
    would wait the 30 s). The slow endpoint still gets one attempt at a time."""
    slow = make_receiver(delay=30.0)
    fast = make_receiver()
    create_endpoint(client, tenant, slow.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    worker = start_erp_worker(settings, threads=4)
    try:
        deadline = time.monotonic() + 30
        while not slow.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slow.requests) == 1, "the worker never reached the slow endpoint"
        create_endpoint(client, tenant, fast.url)
        post_transaction(client, tenant)
        dispatcher.dispatch_tenant(tenant.id)
        deadline = time.monotonic() + 20  # well inside the slow endpoint's 30 s
        while not fast.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fast.requests) == 1, "the fast endpoint waited for the slow one"
        assert len(slow.requests) == 1  # its second message waits for the first attempt
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_the_sweep_takes_at_most_its_share_of_one_endpoints_backlog(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per endpoint, the sweep enqueues its first DUE_PER_ENDPOINT due messages (read
    one endpoint at a time), so a backlog neither fills a sweep nor is read whole."""
    monkeypatch.setattr(dispatcher, "DUE_PER_ENDPOINT", 3)
    monkeypatch.setattr(dispatcher, "JOB_BATCH", 2)
    first, second = make_receiver(), make_receiver()
    create_endpoint(client, tenant, first.url)
    create_endpoint(client, tenant, second.url)
    for _ in range(5):
        post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    jobs = hooks_queue.get_jobs()
    sizes = sorted(len(job.args[1]) for job in jobs)
    assert sizes == [1, 1, 2, 2]  # 3 of each endpoint's 5, in jobs of at most 2
    run_worker(hooks_queue)  # a job then takes whatever else is due for its endpoint
    assert len(first.requests) == len(second.requests) == 5


def test_the_busy_probes_read_only_leased_rows(app: ErpFlask, tenant: TenantHandle) -> None:
    """Whether a job holds leases on an endpoint is read from the leased rows' own index
    (migration 0019), in the sweep, a claim and has_claimable alike: never by walking
    the endpoint's backlog (a failing endpoint's is all unleased)."""
    endpoint = uuid.uuid4()
    params = {"endpoint": endpoint, "ids": None, "limit": 1, "per_endpoint": 1, "lease": "45 s"}
    with app.app_context():
        for stmt in (delivery._CLAIMABLE, delivery._CLAIM, dispatcher._DUE):
            sql = str(stmt)
            plan = db.unit_of_work(
                lambda s, sql=sql: "\n".join(
                    r[0] for r in s.execute(text("EXPLAIN " + sql), params)
                ),
                tenant=tenant.id,
            )
            assert "ix_messages_endpoint_leased" in plan, plan
