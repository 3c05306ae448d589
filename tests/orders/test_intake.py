"""Intake from shops (API.md, Sales channels; Orders: Channels): the signed hook, the
401s that say nothing, deduplication by webhook id and by external_id, Redis down and
the sweep, exactly-once processing (a job run twice, a real worker SIGKILLed mid-job),
Shopify's payload to an exact order, failed then retried, tenant isolation, the last
unit raced through the API and a webhook, and bad input that is never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from erp.config import RateLimits, Settings
from erp.extensions import queue
from erp.http import ErpFlask
from erp.orders import intake, jobs
from erp.orders.kicks import drain_flag, kicks
from tests.conftest import AppFactory
from tests.orders.intake_support import hook, signed_headers, standard_signature
from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body
from tests.webhooks.conftest import start_erp_worker

FIXTURE = Path(__file__).parent / "fixtures" / "shopify_orders_create.json"
SHOPIFY_SECRET = "shpss_test_secret_0123456789abcdef"


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


@pytest.fixture
def orders_queue(app: ErpFlask) -> Iterator[Queue]:
    """This worker's orders queue, empty before and after; the app's context pushed so
    jobs run here use the session app's database and keys."""
    with app.app_context():
        q = queue.queue("orders")
        _clear(q)
        yield q
        _clear(q)


def _clear(q: Queue) -> None:
    q.empty()
    q.connection.delete(q.started_job_registry.key, q.failed_job_registry.key)


def run_jobs(q: Queue) -> None:
    assert kicks.settle()  # the hook's kicks are sent by a thread
    SimpleWorker([q], connection=q.connection, serializer=JSONSerializer).work(burst=True)
    failed = q.failed_job_registry.get_job_ids()
    assert failed == [], [q.fetch_job(j).latest_result().exc_string for j in failed]  # type: ignore[union-attr]


def generic_channel(shop: Shop, **body: Any) -> tuple[str, str]:
    r = shop.post("/api/v1/channels", {"name": "Web shop", "kind": "generic", **body})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"], r.get_json()["signing_secret"]


def shopify_channel(shop: Shop) -> str:
    r = shop.post(
        "/api/v1/channels",
        {"name": "Shopify", "kind": "shopify", "signing_secret": SHOPIFY_SECRET},
    )
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def shopify_headers(
    body: bytes, topic: str = "orders/create", msg_id: str | None = None
) -> dict[str, str]:
    mac = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(mac).decode(),
        "X-Shopify-Webhook-Id": msg_id or str(uuid.uuid4()),
        "X-Shopify-Topic": topic,
        "Content-Type": "application/json",
    }


def send(shop: Shop, channel: tuple[str, str], order: dict[str, Any], **kw: Any) -> Any:
    body = json.dumps(order).encode()
    return hook(shop.client, channel[0], body, signed_headers(channel[1], body, **kw))


def message(shop: Shop, channel_id: str, message_id: str) -> dict[str, Any]:
    r = shop.client.get(
        f"/api/v1/channels/{channel_id}/inbound/{message_id}", headers=shop.tenant.headers
    )
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def backdate(owner_url: str, shop: Shop) -> None:
    """Make the shop's messages a minute old (the sweep takes only those past
    SWEEP_AFTER), as the superuser: erp_app may not change created_at."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE orders.inbound_messages SET created_at = now() - interval '1 minute'"
            " WHERE tenant_id = %s",
            (shop.tenant.id,),
        )


def inbound_count(shop: Shop) -> int:
    return shop.count("orders.inbound_messages")


def a_line(sku: str, quantity: int = 1, unit_price: int = 1500) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": unit_price}


# -- signatures --------------------------------------------------------------------------


def test_a_signed_message_is_stored_answered_202_and_becomes_an_order(
    shop: Shop, orders_queue: Queue
) -> None:
    _, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    r = send(shop, channel, order_body(a_line(sku, 2), external_id="web-1"))
    assert r.status_code == 202, r.get_json()
    answer = r.get_json()
    assert answer == {"id": answer["id"], "status": "received"}
    assert kicks.settle()  # the hook hands its kick to a thread
    assert orders_queue.count == 1
    run_jobs(orders_queue)
    m = message(shop, channel[0], answer["id"])
    assert m["status"] == "processed"
    assert m["error"] is None
    assert json.loads(m["body"])["external_id"] == "web-1"
    order = shop.client.get(f"{ORDERS}/{m['order_id']}", headers=shop.tenant.headers).get_json()
    assert order["channel_id"] == channel[0]
    assert order["external_id"] == "web-1"
    assert order["total"] == 3000
    listed = shop.client.get(
        f"/api/v1/channels/{channel[0]}/inbound?status=processed", headers=shop.tenant.headers
    ).get_json()
    assert [i["id"] for i in listed["items"]] == [answer["id"]]
    assert "body" not in listed["items"][0]
    empty = shop.client.get(
        f"/api/v1/channels/{channel[0]}/inbound?status=failed", headers=shop.tenant.headers
    ).get_json()
    assert empty == {"items": [], "next_cursor": None}


def test_one_valid_signature_among_several_suffices(shop: Shop, orders_queue: Queue) -> None:
    channel = generic_channel(shop)
    body = json.dumps(order_body(a_line("X"), external_id="x")).encode()
    headers = signed_headers(channel[1], body)
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    wrong = standard_signature(
        other, headers["webhook-id"], int(headers["webhook-timestamp"]), body
    )
    headers["webhook-signature"] = f"v2,abc {wrong} {headers['webhook-signature']}"
    assert hook(shop.client, channel[0], body, headers).status_code == 202


def _refused(r: Any) -> dict[str, Any]:
    assert r.status_code == 401, r.get_json()
    problem = dict(r.get_json())
    assert problem["type"].endswith("unauthorized")
    problem.pop("request_id")
    return problem


def test_bad_stale_or_missing_signatures_are_401_and_store_nothing_but_a_count(
    shop: Shop, orders_queue: Queue
) -> None:
    channel = generic_channel(shop)
    body = json.dumps(order_body(a_line("X"), external_id="x")).encode()
    good = signed_headers(channel[1], body)
    stale_ts = int(time.time()) - 301
    cases = [
        {**good, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()},
        signed_headers(channel[1], body, ts=stale_ts),
        signed_headers(channel[1], body, ts=int(time.time()) + 301),
        {k: v for k, v in good.items() if k != "webhook-signature"},
        {k: v for k, v in good.items() if k != "webhook-timestamp"},
        {**good, "webhook-id": "another-id"},
    ]
    key = intake.rejected_key(uuid.UUID(channel[0]))
    before = int(orders_queue.connection.get(key) or 0)
    problems = [_refused(hook(shop.client, channel[0], body, h)) for h in cases]
    assert hook(shop.client, channel[0], body + b" ", good).status_code == 401
    assert all(p == problems[0] for p in problems)
    assert inbound_count(shop) == 0
    assert kicks.settle()
    assert orders_queue.count == 0
    assert int(orders_queue.connection.get(key) or 0) == before + len(cases) + 1


def test_a_rotated_secret_stays_valid_for_24_hours(shop: Shop, owner_engine: Any) -> None:
    channel = generic_channel(shop)
    r = shop.post(f"/api/v1/channels/{channel[0]}/rotate-secret", {})
    assert r.status_code == 200, r.get_json()
    new = (channel[0], r.get_json()["signing_secret"])
    assert send(shop, channel, order_body(a_line("X"), external_id="a")).status_code == 202
    assert send(shop, new, order_body(a_line("X"), external_id="b")).status_code == 202
    shop.execute(
        "UPDATE orders.channels SET previous_secret_expires_at = now() - interval '1 second'"
    )
    assert send(shop, channel, order_body(a_line("X"), external_id="c")).status_code == 401
    assert send(shop, new, order_body(a_line("X"), external_id="d")).status_code == 202


def test_channels_that_cannot_take_messages_are_answered_alike(
    client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    archived_shop = new_shop(client, ops_headers, app_url)
    archived = generic_channel(archived_shop)
    r = archived_shop.client.patch(
        f"/api/v1/channels/{archived[0]}",
        json={"archived": True},
        headers=archived_shop.tenant.headers,
    )
    assert r.status_code == 200
    suspended_shop = new_shop(client, ops_headers, app_url)
    suspended = generic_channel(suspended_shop)
    r = client.post(
        f"/ops/v1/tenants/{suspended_shop.tenant.id}/suspend",
        json={"reason": "test"},
        headers=ops_headers,
    )
    assert r.status_code == 200, r.get_json()
    deleted_shop = new_shop(client, ops_headers, app_url)
    deleted = generic_channel(deleted_shop)
    r = client.delete(f"/ops/v1/tenants/{deleted_shop.tenant.id}", headers=ops_headers)
    assert r.status_code == 202, r.get_json()
    body = json.dumps(order_body(a_line("X"), external_id="x")).encode()
    problems = []
    for cid, secret in [archived, suspended, deleted, (str(uuid.uuid4()), archived[1])]:
        problems.append(_refused(hook(client, cid, body, signed_headers(secret, body))))
    for cid in ["not-a-uuid", "0" * 36, "%00", "x" * 5000]:
        problems.append(_refused(hook(client, cid, body, signed_headers(archived[1], body))))
    assert all(p == problems[0] for p in problems)
    for s in (archived_shop, suspended_shop):
        assert s.count("orders.inbound_messages") == 0


def test_what_a_process_knows_of_a_channel_never_outlives_the_channel(
    client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    """The hook keeps each channel's last lookup to skip a round trip; the insert
    checks the channel still answers the same, so a rotation, an archive or a
    suspension after a message was taken applies to the very next message."""
    shop = new_shop(client, ops_headers, app_url)
    channel = generic_channel(shop)
    cid = uuid.UUID(channel[0])
    assert send(shop, channel, order_body(a_line("X"), external_id="1")).status_code == 202
    assert intake.known_channel(cid) is not None  # the next message skips the lookup
    assert send(shop, channel, order_body(a_line("X"), external_id="2")).status_code == 202
    # rotated elsewhere: the new secret is taken at once, the old one for 24 h
    r = shop.post(f"/api/v1/channels/{channel[0]}/rotate-secret", {})
    new = (channel[0], r.get_json()["signing_secret"])
    assert send(shop, new, order_body(a_line("X"), external_id="3")).status_code == 202
    assert send(shop, channel, order_body(a_line("X"), external_id="4")).status_code == 202
    # archived after it was known here: 401, nothing stored
    r = shop.client.patch(
        f"/api/v1/channels/{cid}", json={"archived": True}, headers=shop.tenant.headers
    )
    assert r.status_code == 200
    stale = intake.known_channel(cid)
    assert stale is not None
    before = inbound_count(shop)
    _refused(send(shop, new, order_body(a_line("X"), external_id="5")))
    assert intake.known_channel(cid) is None
    # a stale guess handed to the store writes nothing
    body = json.dumps(order_body(a_line("X"), external_id="6")).encode()
    verified = intake.Verified(f"msg_{uuid.uuid4().hex}", None)

    def guess(s: Any) -> Any:
        return intake.store(s, stale, verified, body.decode(), None)

    from erp.extensions import db as erp_db

    with client.application.app_context():
        assert erp_db.unit_of_work(guess, tenant=shop.tenant.id) is None
    assert inbound_count(shop) == before
    r = shop.client.patch(
        f"/api/v1/channels/{cid}", json={"archived": False}, headers=shop.tenant.headers
    )
    assert r.status_code == 200
    assert send(shop, new, order_body(a_line("X"), external_id="7")).status_code == 202
    # the tenant suspended after the channel was known here: 401 until reactivated
    r = client.post(
        f"/ops/v1/tenants/{shop.tenant.id}/suspend", json={"reason": "test"}, headers=ops_headers
    )
    assert r.status_code == 200, r.get_json()
    _refused(send(shop, new, order_body(a_line("X"), external_id="8")))
    r = client.post(f"/ops/v1/tenants/{shop.tenant.id}/reactivate", headers=ops_headers)
    assert r.status_code == 200, r.get_json()
    assert send(shop, new, order_body(a_line("X"), external_id="9")).status_code == 202
    ids = {
        r[0] for r in shop.rows("SELECT body::jsonb->>'external_id' FROM orders.inbound_messages")
    }
    assert ids == {"1", "2", "3", "4", "7", "9"}


def test_the_usual_message_skips_flask_and_is_answered_as_flask_answers_it(
    shop: Shop, app: ErpFlask, orders_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """erp/fastpath.py: a message to a channel this process knows, validly signed, is
    stored and answered before Flask, with the same status, body and headers as the
    Flask route gives; anything else goes to the route."""
    routed: list[str] = []
    view = app.view_functions["orders_hooks.receive_order"]

    def counted(*args: Any, **kwargs: Any) -> Any:
        routed.append(kwargs["channel_id"])
        return view(*args, **kwargs)

    monkeypatch.setitem(app.view_functions, "orders_hooks.receive_order", counted)
    channel = generic_channel(shop)
    first = send(shop, channel, order_body(a_line("X"), external_id="f1"))
    assert first.status_code == 202
    assert len(routed) == 1  # not yet known here: the route
    assert kicks.settle()
    orders_queue.empty()
    orders_queue.connection.delete(*(drain_flag(shop.tenant.id, i) for i in range(4)))
    body = json.dumps(order_body(a_line("X"), external_id="f2")).encode()
    headers = {**signed_headers(channel[1], body, msg_id="msg_fast"), "X-Request-Id": "req-f2"}
    fast = hook(shop.client, channel[0], body, headers)
    assert fast.status_code == 202
    assert len(routed) == 1  # known: answered before Flask
    assert set(fast.get_json()) == set(first.get_json()) == {"id", "status"}
    assert fast.get_json()["status"] == "received"
    assert sorted(fast.headers.keys()) == sorted(first.headers.keys())
    assert fast.headers["Content-Type"] == first.headers["Content-Type"]
    assert fast.headers["X-Request-Id"] == "req-f2"
    again = hook(shop.client, channel[0], body, headers)
    assert (again.status_code, again.get_json()) == (200, fast.get_json())
    assert len(routed) == 1
    assert kicks.settle()
    assert orders_queue.count == 1  # the fast answer kicked the drain too
    # every other case is the route's
    bad = signed_headers(channel[1], body + b" ")
    assert hook(shop.client, channel[0], body, bad).status_code == 401
    query = shop.client.post(
        f"/hooks/v1/channels/{channel[0]}/orders?x=1",
        data=body,
        headers=signed_headers(channel[1], body),
    )
    assert query.status_code == 202
    assert len(routed) == 3
    assert inbound_count(shop) == 3


# -- deduplication -----------------------------------------------------------------------


def test_a_repeated_webhook_id_is_200_with_the_stored_message_and_applied_once(
    shop: Shop, orders_queue: Queue
) -> None:
    _, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    body = json.dumps(order_body(a_line(sku), external_id="web-2")).encode()
    headers = signed_headers(channel[1], body, msg_id="msg_same")
    first = hook(shop.client, channel[0], body, headers)
    assert first.status_code == 202
    again = hook(shop.client, channel[0], body, headers)
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    run_jobs(orders_queue)
    third = hook(shop.client, channel[0], body, signed_headers(channel[1], body, msg_id="msg_same"))
    assert third.status_code == 200
    assert third.get_json() == {"id": first.get_json()["id"], "status": "processed"}
    assert inbound_count(shop) == 1
    assert shop.count("orders.orders") == 1


def test_the_same_webhook_id_sent_at_once_is_stored_once(shop: Shop, orders_queue: Queue) -> None:
    """Eight copies of one message raced (the first through the route, which makes the
    channel known here, then the fast path): one 202, seven 200s naming the same
    message, one row."""
    channel = generic_channel(shop)
    assert send(shop, channel, order_body(a_line("X"), external_id="warm")).status_code == 202
    body = json.dumps(order_body(a_line("X"), external_id="race")).encode()
    headers = signed_headers(channel[1], body, msg_id="msg_raced")
    barrier = threading.Barrier(8)
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def one() -> None:
        client = shop.client.application.test_client()
        barrier.wait()
        r = hook(client, channel[0], body, headers)
        with lock:
            answers.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(code for code, _ in answers) == [200] * 7 + [202]
    assert len({a["id"] for _, a in answers}) == 1
    assert (
        shop.one("SELECT count(*) FROM orders.inbound_messages WHERE webhook_id = 'msg_raced'") == 1
    )


def test_the_same_external_id_again_is_a_duplicate_of_the_first_order(
    shop: Shop, orders_queue: Queue
) -> None:
    _, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    a = send(shop, channel, order_body(a_line(sku), external_id="web-3")).get_json()
    b = send(shop, channel, order_body(a_line(sku), external_id="web-3")).get_json()
    c = send(shop, channel, order_body(a_line(sku, 2), external_id="web-3")).get_json()
    run_jobs(orders_queue)
    ma, mb, mc = (message(shop, channel[0], x["id"]) for x in (a, b, c))
    assert ma["status"] == "processed"
    assert (mb["status"], mb["order_id"]) == ("duplicate", ma["order_id"])
    assert (mc["status"], mc["order_id"]) == ("duplicate", ma["order_id"])
    assert shop.count("orders.orders") == 1
    assert shop.level(shop.rows("SELECT item_id FROM orders.order_lines")[0][0]) == (5, 1)


# -- Redis down, the sweep, exactly once ---------------------------------------------------


def test_with_redis_down_the_message_is_stored_accepted_and_swept_later(
    shop: Shop, make_app: AppFactory, orders_queue: Queue, owner_url: str
) -> None:
    _, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    down = make_app(redis_url="redis://127.0.0.1:1/0")
    body = json.dumps(order_body(a_line(sku), external_id="web-4")).encode()
    started = time.perf_counter()
    r = hook(down.test_client(), channel[0], body, signed_headers(channel[1], body))
    assert r.status_code == 202, r.get_json()
    assert time.perf_counter() - started < 2
    assert kicks.settle()  # its kick tried the app's Redis, which is down
    assert orders_queue.count == 0
    assert intake.sweep_tenant(shop.tenant.id) == 0  # too fresh: its job may still be on its way
    backdate(owner_url, shop)
    assert intake.sweep() >= 1  # other tests' leftovers too: the discovery names every tenant
    run_jobs(orders_queue)
    assert message(shop, channel[0], r.get_json()["id"])["status"] == "processed"
    assert intake.sweep_tenant(shop.tenant.id) == 0


def test_the_job_run_twice_makes_one_order(shop: Shop, orders_queue: Queue, owner_url: str) -> None:
    _, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    r = send(shop, channel, order_body(a_line(sku), external_id="web-5"))
    mid = r.get_json()["id"]
    assert jobs.process(str(shop.tenant.id), mid) == "processed"
    assert jobs.process(str(shop.tenant.id), mid) is None
    backdate(owner_url, shop)
    assert intake.sweep_tenant(shop.tenant.id) == 0
    run_jobs(orders_queue)
    assert shop.count("orders.orders") == 1


def test_a_worker_killed_mid_job_leaves_one_order_after_recovery(
    shop: Shop, orders_queue: Queue, settings: Settings, owner_url: str
) -> None:
    item, sku = shop.item(stock=5)
    channel = generic_channel(shop)
    # Hold the stock level row: the job's placement waits on it, mid-transaction.
    blocker = psycopg.connect(owner_url)
    blocker.execute("SELECT set_config('app.tenant_id', %s, false)", (str(shop.tenant.id),))
    blocker.execute("BEGIN")
    blocker.execute("SELECT 1 FROM inventory.stock_levels WHERE item_id = %s FOR UPDATE", (item,))
    # (pg_stat_activity is a snapshot per transaction: watched from outside the blocker's)
    watcher = psycopg.connect(owner_url, autocommit=True)
    worker = start_erp_worker(settings)
    try:
        r = send(shop, channel, order_body(a_line(sku), external_id="web-6"))
        mid = r.get_json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.05)
        else:
            status = message(shop, channel[0], mid)["status"]
            failed = [
                orders_queue.fetch_job(j).latest_result().exc_string  # type: ignore[union-attr]
                for j in orders_queue.failed_job_registry.get_job_ids()
            ]
            pytest.fail(f"the job never reached the placement ({status}, {failed})")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        blocker.execute("ROLLBACK")
        blocker.close()
        watcher.close()
    time.sleep(0.2)  # the dead session's transaction is rolled back by the server
    assert message(shop, channel[0], mid)["status"] == "received"
    assert shop.count("orders.orders") == 0
    orders_queue.empty()
    backdate(owner_url, shop)
    assert intake.sweep() >= 1
    worker = start_erp_worker(settings)
    try:
        deadline = time.monotonic() + 30
        while message(shop, channel[0], mid)["status"] == "received":
            assert time.monotonic() < deadline, "the recovered job never ran"
            time.sleep(0.1)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(20)
    assert message(shop, channel[0], mid)["status"] == "processed"
    assert shop.count("orders.orders") == 1
    assert shop.level(item) == (5, 1)


# -- Shopify ------------------------------------------------------------------------------


def test_a_shopify_order_becomes_an_order_with_exact_amounts(
    shop: Shop, orders_queue: Queue
) -> None:
    item, _ = shop.item(stock=5, sku="IPOD2008PINK")
    cid = shopify_channel(shop)
    body = FIXTURE.read_bytes()
    r = hook(shop.client, cid, body, shopify_headers(body))
    assert r.status_code == 202, r.get_json()
    ignored = hook(shop.client, cid, body, shopify_headers(body, topic="orders/updated"))
    assert ignored.status_code == 202
    run_jobs(orders_queue)
    m = message(shop, cid, r.get_json()["id"])
    assert m["status"] == "processed", m["error"]
    order = shop.client.get(f"{ORDERS}/{m['order_id']}", headers=shop.tenant.headers).get_json()
    assert order["external_id"] == "820982911946154508"
    assert [
        (ln["sku"], ln["quantity"], ln["unit_price"], ln["total"]) for ln in order["lines"]
    ] == [
        ("IPOD2008PINK", 1, 19900, 19900),
        ("IPOD2008PINK", 1, 19900, 19900),
    ]
    assert order["shipping"]["amount"] == 1000
    assert (order["subtotal"], order["tax"], order["total"]) == (40800, 0, 40800)
    assert order["metadata"] == {"shopify_order_number": json.loads(body)["order_number"]}
    assert message(shop, cid, ignored.get_json()["id"])["status"] == "ignored"
    assert shop.level(item) == (5, 2)


def test_a_bad_shopify_hmac_is_401(shop: Shop) -> None:
    cid = shopify_channel(shop)
    body = FIXTURE.read_bytes()
    headers = shopify_headers(body)
    assert _refused(hook(shop.client, cid, body + b"\n", headers))
    assert _refused(hook(shop.client, cid, body, {**headers, "X-Shopify-Hmac-Sha256": "AAAA"}))
    no_id = {k: v for k, v in headers.items() if k != "X-Shopify-Webhook-Id"}
    assert _refused(hook(shop.client, cid, body, no_id))
    assert inbound_count(shop) == 0


def test_a_shopify_cancellation_cancels_the_order_once(shop: Shop, orders_queue: Queue) -> None:
    item, _ = shop.item(stock=5, sku="IPOD2008PINK")
    cid = shopify_channel(shop)
    created = FIXTURE.read_bytes()
    hook(shop.client, cid, created, shopify_headers(created))
    run_jobs(orders_queue)
    assert shop.level(item) == (5, 2)
    body = json.dumps({"id": json.loads(created)["id"]}).encode()
    r = hook(shop.client, cid, body, shopify_headers(body, topic="orders/cancelled"))
    again = hook(shop.client, cid, body, shopify_headers(body, topic="orders/cancelled"))
    run_jobs(orders_queue)
    first = message(shop, cid, r.get_json()["id"])
    assert first["status"] == "processed"
    order = shop.client.get(f"{ORDERS}/{first['order_id']}", headers=shop.tenant.headers)
    assert order.get_json()["status"] == "cancelled"
    assert shop.level(item) == (5, 0)
    second = message(shop, cid, again.get_json()["id"])
    assert second["status"] == "failed"  # no longer cancellable: says why
    assert "cancelled" in second["error"]["detail"]


def test_a_shopify_cancellation_of_an_unknown_order_fails_with_why(
    shop: Shop, orders_queue: Queue
) -> None:
    cid = shopify_channel(shop)
    body = json.dumps({"id": 123456789}).encode()
    r = hook(shop.client, cid, body, shopify_headers(body, topic="orders/cancelled"))
    run_jobs(orders_queue)
    m = message(shop, cid, r.get_json()["id"])
    assert m["status"] == "failed"
    assert "123456789" in m["error"]["detail"]


# -- failed, retried ----------------------------------------------------------------------


def test_an_unknown_sku_fails_and_is_retried_once_the_item_exists(
    shop: Shop, orders_queue: Queue
) -> None:
    channel = generic_channel(shop)
    r = send(shop, channel, order_body(a_line("NEW-SKU"), external_id="web-7"))
    mid = r.get_json()["id"]
    run_jobs(orders_queue)
    m = message(shop, channel[0], mid)
    assert m["status"] == "failed"
    assert set(m["error"]) >= {"type", "title", "detail"}
    assert m["error"]["type"].endswith("validation")
    assert "lines.0.sku" in m["error"]["errors"]
    assert shop.count("orders.orders") == 0
    retry = f"/api/v1/channels/{channel[0]}/inbound/{mid}/retry"
    shop.item(stock=3, sku="NEW-SKU")
    r = shop.client.post(retry, headers=shop.tenant.headers)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["status"] == "received"
    run_jobs(orders_queue)
    assert message(shop, channel[0], mid)["status"] == "processed"
    again = shop.client.post(retry, headers=shop.tenant.headers)
    assert again.status_code == 409
    assert "processed" in again.get_json()["detail"]


def test_mapping_errors_and_shortage_fail_the_message_never_the_hook(
    shop: Shop, orders_queue: Queue
) -> None:
    _, sku = shop.item(stock=1)
    channel = generic_channel(shop)
    cases = {
        "not-json": b"{nope",
        "no-external-id": json.dumps(order_body(a_line(sku))).encode(),
        "float": json.dumps(
            order_body({**a_line(sku), "unit_price": 1.5}, external_id="f")
        ).encode(),
        "short": json.dumps(order_body(a_line(sku, 2), external_id="s")).encode(),
        "array": b"[]",
    }
    ids = {}
    for name, body in cases.items():
        r = hook(shop.client, channel[0], body, signed_headers(channel[1], body))
        assert r.status_code == 202, (name, r.get_json())
        ids[name] = r.get_json()["id"]
    run_jobs(orders_queue)
    errors = {name: message(shop, channel[0], mid)["error"] for name, mid in ids.items()}
    assert all(e is not None for e in errors.values()), errors
    assert errors["short"]["type"].endswith("insufficient-stock")
    assert "lines.0.quantity" in errors["short"]["errors"]
    assert "external_id" in errors["no-external-id"]["errors"]
    assert "lines.0.unit_price" in errors["float"]["errors"]
    assert shop.count("orders.orders") == 0
    assert shop.level(shop.rows("SELECT id FROM inventory.items")[0][0]) == (1, 0)


def test_what_the_api_would_refuse_fails_the_message_and_blocks_no_later_one(
    shop: Shop, orders_queue: Queue
) -> None:
    """The hook stores any signed text. Nesting past the parser's recursion or a lone
    surrogate (which the driver cannot encode) must fail that message, as the API's
    checks refuse them (docs/problems.md), not the job: else it stays `received`, the
    oldest, and every drain of the tenant dies on it again."""
    _, sku = shop.item(stock=1)
    channel = generic_channel(shop)
    order = order_body(a_line(sku), external_id="bad")
    bad = {
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "surrogate": json.dumps(order).replace("Ada", "A\\ud800").encode(),
        "nan": json.dumps({**order, "metadata": {"x": float("nan")}}).encode(),
    }
    sent = {}
    for name, body in bad.items():
        r = hook(shop.client, channel[0], body, signed_headers(channel[1], body))
        assert r.status_code == 202, (name, r.get_json())
        sent[name] = r.get_json()["id"]
    later = send(shop, channel, order_body(a_line(sku), external_id="after"))
    run_jobs(orders_queue)
    errors = {}
    for name, mid in sent.items():
        m = message(shop, channel[0], mid)
        assert m["status"] == "failed", (name, m)
        assert m["error"]["type"].endswith("validation"), (name, m)
        errors[name] = m["error"]["errors"]
    assert errors["deep"] == {"_schema": ["Is nested deeper than 32 levels."]}
    assert errors["surrogate"] == {"customer.name": ["Contains an unpaired UTF-16 surrogate."]}
    assert list(errors["nan"]) == ["metadata.x"]
    assert message(shop, channel[0], later.get_json()["id"])["status"] == "processed"


def test_a_message_that_keeps_crashing_the_job_fails_after_max_attempts_and_blocks_no_later_one(
    shop: Shop, orders_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while processing (a bug to come in a mapper, say) rolls the
    attempt back; counted, it fails the job until MAX_ATTEMPTS, then the message is
    `failed` (internal) and the drain goes on to the messages behind it."""
    _, sku = shop.item(stock=2)
    channel = generic_channel(shop)
    mapped = intake.mappers.map_generic_order

    def buggy(payload: Any) -> Any:
        if payload.get("external_id") == "poison":
            raise RuntimeError("a mapper bug")
        return mapped(payload)

    monkeypatch.setattr(intake.mappers, "map_generic_order", buggy)
    poison = send(shop, channel, order_body(a_line(sku), external_id="poison")).get_json()["id"]
    later = send(shop, channel, order_body(a_line(sku), external_id="later")).get_json()["id"]
    assert kicks.settle()
    orders_queue.empty()
    tenant = uuid.UUID(str(shop.tenant.id))
    with shop.client.application.app_context():
        for attempt in range(1, intake.MAX_ATTEMPTS):
            with pytest.raises(RuntimeError, match="a mapper bug"):
                intake.drain(tenant, None)
            m = message(shop, channel[0], poison)
            assert m["status"] == "received", (attempt, m)
            assert message(shop, channel[0], later)["status"] == "received"
        assert intake.drain(tenant, None) == 2
    m = message(shop, channel[0], poison)
    assert m["status"] == "failed"
    assert m["error"]["type"].endswith("internal")
    assert str(intake.MAX_ATTEMPTS) in m["error"]["detail"]
    assert message(shop, channel[0], later)["status"] == "processed"
    assert shop.count("orders.orders") == 1


def test_an_outage_or_contention_while_processing_never_fails_the_message(
    shop: Shop, orders_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock not granted in time (55P03) or a lost connection is not the message's
    fault: the job fails, the message stays `received` however often it happens, and
    is applied once the database answers."""
    import psycopg.errors
    from sqlalchemy.exc import DBAPIError, OperationalError

    _, sku = shop.item(stock=2)
    channel = generic_channel(shop)
    mapped = intake.mappers.map_generic_order
    failures: list[BaseException] = [
        OperationalError("place", {}, psycopg.errors.LockNotAvailable("lock timeout")),
        OperationalError("place", {}, psycopg.errors.AdminShutdown("terminating")),
        DBAPIError("place", {}, psycopg.errors.QueryCanceled("statement timeout")),
    ] * intake.MAX_ATTEMPTS

    def flaky(payload: Any) -> Any:
        if failures:
            raise failures.pop()
        return mapped(payload)

    monkeypatch.setattr(intake.mappers, "map_generic_order", flaky)
    mid = send(shop, channel, order_body(a_line(sku), external_id="flaky")).get_json()["id"]
    assert kicks.settle()
    orders_queue.empty()
    tenant = uuid.UUID(str(shop.tenant.id))
    with shop.client.application.app_context():
        while failures:
            with pytest.raises(DBAPIError):
                intake.drain(tenant, None)
            assert message(shop, channel[0], mid)["status"] == "received"
        assert intake.drain(tenant, None) == 1
    assert message(shop, channel[0], mid)["status"] == "processed"


# -- isolation, races -----------------------------------------------------------------------


def test_inbound_to_tenant_a_never_lands_in_tenant_b(
    client: Any, ops_headers: dict[str, str], app_url: str, orders_queue: Queue
) -> None:
    a = new_shop(client, ops_headers, app_url)
    b = new_shop(client, ops_headers, app_url)
    _, sku = a.item(stock=2, sku="SAME-SKU")
    b.item(stock=2, sku="SAME-SKU")
    channel = generic_channel(a)
    r = send(a, channel, order_body(a_line(sku), external_id="iso"))
    run_jobs(orders_queue)
    assert message(a, channel[0], r.get_json()["id"])["status"] == "processed"
    assert (a.count("orders.orders"), b.count("orders.orders")) == (1, 0)
    assert b.count("orders.inbound_messages") == 0
    for path in (
        f"/api/v1/channels/{channel[0]}/inbound",
        f"/api/v1/channels/{channel[0]}/inbound/{r.get_json()['id']}",
    ):
        assert client.get(path, headers=b.tenant.headers).status_code == 404
    retry = f"/api/v1/channels/{channel[0]}/inbound/{r.get_json()['id']}/retry"
    assert client.post(retry, headers=b.tenant.headers).status_code == 404


def _race_for_the_last_unit(shop: Shop, app: ErpFlask) -> tuple[int, str | None]:
    _, sku = shop.item(stock=1)
    channel = generic_channel(shop)
    r = send(shop, channel, order_body(a_line(sku), external_id=f"hook-{sku}"))
    mid = r.get_json()["id"]
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def by_api() -> None:
        client = app.test_client()
        barrier.wait()
        results["api"] = client.post(
            ORDERS, json=order_body(a_line(sku)), headers=shop.tenant.headers
        ).status_code

    def by_hook() -> None:
        with app.app_context():
            barrier.wait()
            results["hook"] = jobs.process(str(shop.tenant.id), mid)

    threads = [threading.Thread(target=by_api), threading.Thread(target=by_hook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert shop.one("SELECT count(*) FROM orders.order_lines WHERE sku = %s", sku) == 1
    return results["api"], results["hook"]


def test_the_last_unit_bought_through_the_api_and_a_webhook_at_once_has_one_winner(
    shop: Shop, orders_queue: Queue, app: ErpFlask
) -> None:
    for _ in range(3):
        outcome = _race_for_the_last_unit(shop, app)
        assert outcome in {(201, "failed"), (409, "processed")}, outcome


# -- rate limit, bad input -------------------------------------------------------------------


def test_a_channel_over_its_rate_limit_is_429_with_retry_after(
    shop: Shop, make_app: AppFactory, orders_queue: Queue
) -> None:
    channel = generic_channel(shop)
    limited = make_app(rate_limits=RateLimits(None, None, None, "2/minute")).test_client()
    statuses = []
    for i in range(3):
        body = json.dumps(order_body(a_line("X"), external_id=f"rl-{i}")).encode()
        r = hook(limited, channel[0], body, signed_headers(channel[1], body))
        statuses.append(r.status_code)
    assert statuses == [202, 202, 429]
    assert int(r.headers["Retry-After"]) >= 1
    assert r.get_json()["type"].endswith("rate-limited")
    assert inbound_count(shop) == 2


def test_bad_input_is_never_a_500(shop: Shop, orders_queue: Queue, settings: Settings) -> None:
    channel = generic_channel(shop)
    nul = b'{"external_id": "n\x00ul"}'
    bad_utf8 = b'{"external_id": "\xff\xfe"}'
    for body in (nul, bad_utf8):
        r = hook(shop.client, channel[0], body, signed_headers(channel[1], body))
        assert r.status_code == 202, r.get_json()
        assert r.get_json()["status"] == "failed"
        m = message(shop, channel[0], r.get_json()["id"])
        assert m["error"]["type"].endswith("malformed-request")
        assert "\x00" not in m["body"]
    huge = b"x" * (settings.max_content_length + 1)
    r = hook(shop.client, channel[0], huge, signed_headers(channel[1], huge))
    assert r.status_code == 413
    body = b"{}"
    absurd = [
        {**signed_headers(channel[1], body), "webhook-id": "x" * 10_000},
        {**signed_headers(channel[1], body), "webhook-signature": "v1," + "A" * 100_000},
        {**signed_headers(channel[1], body), "webhook-timestamp": "9" * 400},
        {**signed_headers(channel[1], body), "webhook-signature": "v1,ÿÿ"},
        {**signed_headers(channel[1], body), "webhook-id": "a b\tc"},
        {"webhook-signature": " ".join(["v1,AAAA"] * 5000)},
    ]
    for headers in absurd:
        r = hook(shop.client, channel[0], body, headers)
        assert r.status_code == 401, r.get_json()
    run_jobs(orders_queue)
    assert shop.count("orders.orders") == 0
