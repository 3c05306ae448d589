"""Deliveries end to end: a posted transaction -> a signed POST at a real receiver on
127.0.0.1, through the dispatcher, RQ (burst worker), real PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from rq import Queue
from sqlalchemy import Engine, text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from erp.webhooks import delivery, dispatcher
from tests.conftest import TenantHandle
from tests.webhooks.conftest import (
    Receiver,
    create_endpoint,
    deliver_all,
    owner_sql,
    post_transaction,
    run_worker,
)

BASE = "/api/v1/webhooks/endpoints"


def _messages(client: Any, tenant: TenantHandle, endpoint_id: str, **q: str) -> list[Any]:
    r = client.get(f"{BASE}/{endpoint_id}/messages", query_string=q, headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    return list(r.get_json()["items"])


def _attempts(client: Any, tenant: TenantHandle, endpoint_id: str, **q: str) -> list[Any]:
    r = client.get(f"{BASE}/{endpoint_id}/attempts", query_string=q, headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    return list(r.get_json()["items"])


def _make_due(owner_engine: Engine, tenant: TenantHandle) -> None:
    owner_sql(
        owner_engine,
        "UPDATE webhooks.messages SET next_attempt_at = now() - interval '1 second' "
        "WHERE tenant_id = :t AND status = 'pending'",
        t=tenant.id,
    )


def test_a_posted_transaction_is_delivered_signed(
    client: Any, tenant: TenantHandle, receiver: Receiver, hooks_queue: Queue
) -> None:
    endpoint = create_endpoint(client, tenant, receiver.url)
    tx = post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)

    (got,) = receiver.requests
    assert got.path == "/hooks"
    assert got.headers["content-type"] == "application/json"
    doc = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert doc["type"] == "ledger.transaction.posted"
    assert doc["data"]["id"] == tx["id"]
    assert doc["timestamp"].endswith("Z")
    # the body is the event as GET /webhooks/events/{id} serves it, and fits its schema
    event = client.get(
        f"/api/v1/webhooks/events/{got.headers['webhook-id']}", headers=tenant.headers
    ).get_json()
    assert event["data"] == doc["data"]
    assert event["type"] == doc["type"]
    types = client.get("/api/v1/webhooks/event-types", headers=tenant.headers).get_json()
    schema = next(t["schema"] for t in types["items"] if t["type"] == doc["type"])
    jsonschema.validate(doc["data"], schema)

    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "delivered"
    assert message["attempts"] == 1
    assert message["event_id"] == got.headers["webhook-id"]
    assert message["next_attempt_at"] is None
    (attempt,) = _attempts(client, tenant, endpoint["id"])
    assert attempt["status"] == "succeeded"
    assert attempt["response_status"] == 200
    assert attempt["response_body"] == "ok"
    assert attempt["error"] is None
    assert attempt["message_id"] == message["id"]


def test_a_stock_change_is_delivered_signed(
    client: Any, tenant: TenantHandle, receiver: Receiver, hooks_queue: Queue
) -> None:
    """A receipt of stock (inventory's one-call move) -> its stock.changed event, signed,
    at an endpoint that subscribed to stock events only (the move's ledger posting is
    not sent there)."""
    from tests.inventory.test_api import Api

    endpoint = create_endpoint(client, tenant, receiver.url, event_types=["stock.changed"])
    api = Api(client, tenant)
    item = api.item()
    move = api.move(
        kind="receipt", item_id=item["id"], quantity=7, to_location_id=api.main(), unit_cost=250
    )
    deliver_all(hooks_queue, tenant)

    (got,) = receiver.requests
    doc = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert doc["type"] == "stock.changed"
    data = doc["data"]
    assert (data["item_id"], data["on_hand"], data["available"]) == (item["id"], 7, 7)
    assert data["delta"] == {"on_hand": 7, "reserved": 0}
    assert data["sources"] == [{"type": "move", "id": move["id"]}]
    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "delivered"


def test_the_filter_and_disabled_endpoints_decide_who_gets_a_message(
    client: Any, tenant: TenantHandle, make_receiver: Any, hooks_queue: Queue
) -> None:
    subscribed, other, off = make_receiver(), make_receiver(), make_receiver()
    create_endpoint(client, tenant, subscribed.url, event_types=["ledger.transaction.posted"])
    create_endpoint(client, tenant, other.url, event_types=["webhook_endpoint.disabled"])
    disabled = create_endpoint(client, tenant, off.url)
    client.patch(f"{BASE}/{disabled['id']}", json={"disabled": True}, headers=tenant.headers)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(subscribed.requests) == 1
    assert other.requests == []
    assert off.requests == []


def test_a_failing_receiver_gets_the_same_webhook_id_until_it_answers_2xx(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(statuses=[500, 503, 200])
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "pending"
    assert message["attempts"] == 1
    due = datetime.fromisoformat(message["next_attempt_at"])
    delay = (due - datetime.fromisoformat(message["created_at"])).total_seconds()
    assert 4.0 <= delay <= 6.5  # 5 s ± 10 % jitter (plus the attempt's own time)

    run_worker(hooks_queue)  # not due yet: nothing happens
    assert len(receiver.requests) == 1
    for _ in range(2):
        _make_due(owner_engine, tenant)
        deliver_all(hooks_queue, tenant)
    assert len(receiver.requests) == 3
    assert len(set(receiver.ids())) == 1
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same bytes at every attempt
    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "delivered"
    assert message["attempts"] == 3
    attempts = _attempts(client, tenant, endpoint["id"])
    assert [a["response_status"] for a in attempts] == [200, 503, 500]
    assert [a["error"] for a in attempts] == [None, "http_status", "http_status"]
    failed = _attempts(client, tenant, endpoint["id"], status="failed")
    assert len(failed) == 2


def test_the_schedule_ends_in_failed(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(statuses=[500])
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    for _ in range(len(delivery.SCHEDULE)):
        _make_due(owner_engine, tenant)
        deliver_all(hooks_queue, tenant)
    assert len(receiver.requests) == 1 + len(delivery.SCHEDULE)
    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "failed"
    assert message["next_attempt_at"] is None
    _make_due(owner_engine, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(receiver.requests) == 1 + len(delivery.SCHEDULE)

    # recover: a new schedule for failed messages since a time
    receiver.statuses = [200]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = client.post(
        f"{BASE}/{endpoint['id']}/recover", json={"since": since}, headers=tenant.headers
    )
    assert r.status_code == 202
    assert r.get_json() == {"messages": 1}
    run_worker(hooks_queue)
    (message,) = _messages(client, tenant, endpoint["id"])
    assert message["status"] == "delivered"
    assert len(set(receiver.ids())) == 1


def test_retry_schedule_has_the_documented_steps_with_jitter() -> None:
    now = datetime.now(UTC)
    wanted = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for step, seconds in enumerate(wanted):
        got = [(delivery.next_attempt(step, now) - now).total_seconds() for _ in range(50)]  # type: ignore[operator]
        assert all(seconds * 0.9 <= g <= seconds * 1.1 for g in got)
        assert len(set(got)) > 1
    assert delivery.next_attempt(len(wanted), now) is None


def test_410_disables_the_endpoint_audits_and_emits_an_event(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    gone = make_receiver(statuses=[410])
    watcher = make_receiver()
    endpoint = create_endpoint(client, tenant, gone.url)
    watch = create_endpoint(client, tenant, watcher.url, event_types=["webhook_endpoint.disabled"])
    messages = delivery.IN_FLIGHT + 2
    for _ in range(messages):
        post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    # no attempt starts after the 410 (those already in flight, at most IN_FLIGHT, end)
    attempted = len(gone.requests)
    assert 1 <= attempted <= delivery.IN_FLIGHT
    shown = client.get(f"{BASE}/{endpoint['id']}", headers=tenant.headers).get_json()
    assert shown["disabled"] is True
    assert shown["disabled_reason"] == "gone"
    statuses = [m["status"] for m in _messages(client, tenant, endpoint["id"])]
    assert statuses == ["failed"] * messages
    deliver_all(hooks_queue, tenant)  # the disabled event reaches the watcher
    (told,) = watcher.requests
    doc = Webhook(watch["secret"]).verify(told.body, told.headers)
    assert doc["type"] == "webhook_endpoint.disabled"
    types = client.get("/api/v1/webhooks/event-types", headers=tenant.headers).get_json()
    schema = next(t["schema"] for t in types["items"] if t["type"] == doc["type"])
    jsonschema.validate(doc["data"], schema)
    assert doc["data"]["id"] == endpoint["id"]
    assert "secret" not in doc["data"]
    with owner_engine.connect() as conn:
        actions = conn.execute(
            text(
                "SELECT action, details, actor FROM iam.audit_log WHERE tenant_id = :t "
                "AND subject_id = :e ORDER BY occurred_at"
            ),
            {"t": tenant.id, "e": endpoint["id"]},
        ).all()
    assert ("webhooks.endpoint.disabled", {"reason": "gone"}, "system:webhooks") in [
        tuple(a) for a in actions
    ]
    # a disabled endpoint gets no new messages, and refuses recover and test
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(gone.requests) == attempted
    r = client.post(
        f"{BASE}/{endpoint['id']}/recover",
        json={"since": datetime.now(UTC).isoformat()},
        headers=tenant.headers,
    )
    assert r.status_code == 409


def test_failing_for_five_days_disables_the_endpoint(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(statuses=[500])
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    shown = client.get(f"{BASE}/{endpoint['id']}", headers=tenant.headers).get_json()
    assert shown["disabled"] is False
    owner_sql(
        owner_engine,
        "UPDATE webhooks.endpoints SET failing_since = now() - interval '5 days 1 minute' "
        "WHERE id = :e",
        e=endpoint["id"],
    )
    _make_due(owner_engine, tenant)
    deliver_all(hooks_queue, tenant)
    shown = client.get(f"{BASE}/{endpoint['id']}", headers=tenant.headers).get_json()
    assert shown["disabled"] is True
    assert shown["disabled_reason"] == "failing"
    events = client.get(
        "/api/v1/webhooks/events",
        query_string={"type": "webhook_endpoint.disabled"},
        headers=tenant.headers,
    ).get_json()["items"]
    assert [e["data"]["disabled_reason"] for e in events] == ["failing"]


def test_a_success_clears_the_failing_clock(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(statuses=[500, 200])
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    _make_due(owner_engine, tenant)
    deliver_all(hooks_queue, tenant)
    with owner_engine.connect() as conn:
        since = conn.execute(
            text("SELECT failing_since FROM webhooks.endpoints WHERE id = :e"),
            {"e": endpoint["id"]},
        ).scalar_one()
    assert since is None


def test_redirects_are_not_followed(
    client: Any, tenant: TenantHandle, make_receiver: Any, hooks_queue: Queue
) -> None:
    target = make_receiver()
    hop = make_receiver(statuses=[307], extra_headers={"location": target.url})
    endpoint = create_endpoint(client, tenant, hop.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(hop.requests) == 1
    assert target.requests == []
    (attempt,) = _attempts(client, tenant, endpoint["id"])
    assert attempt["error"] == "redirect"
    assert attempt["response_status"] == 307


def test_only_the_first_4_kib_of_the_answer_is_kept(
    client: Any, tenant: TenantHandle, make_receiver: Any, hooks_queue: Queue
) -> None:
    big = make_receiver(answer=b"x" * 10_000)
    endpoint = create_endpoint(client, tenant, big.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    (attempt,) = _attempts(client, tenant, endpoint["id"])
    assert attempt["response_body"] == "x" * 4096


def test_a_name_resolving_to_loopback_is_refused_after_dns(
    client: Any, tenant: TenantHandle, receiver: Receiver, hooks_queue: Queue
) -> None:
    """`localhost` passes the literal check at creation (it is a name; API.md: creation
    checks literal addresses only), resolves to 127.0.0.1 at the attempt, and is refused
    there: the test settings allow only the literal 127.0.0.1."""
    port = receiver.url.split(":")[2].split("/")[0]
    endpoint = create_endpoint(client, tenant, f"https://localhost:{port}/hooks")
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert receiver.requests == []
    (attempt,) = _attempts(client, tenant, endpoint["id"])
    assert attempt["error"] == "refused_address"
    assert attempt["status"] == "failed"
    assert attempt["response_status"] is None


def test_an_unreachable_endpoint_is_a_connection_error(
    client: Any, tenant: TenantHandle, hooks_queue: Queue
) -> None:
    endpoint = create_endpoint(client, tenant, "http://127.0.0.1:9/nothing-listens")
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    (attempt,) = _attempts(client, tenant, endpoint["id"])
    assert attempt["error"] == "connection"


def test_the_test_ping_reaches_one_endpoint_whatever_its_filter(
    client: Any, tenant: TenantHandle, make_receiver: Any, hooks_queue: Queue
) -> None:
    pinged, bystander = make_receiver(), make_receiver()
    endpoint = create_endpoint(
        client, tenant, pinged.url, event_types=["webhook_endpoint.disabled"]
    )
    create_endpoint(client, tenant, bystander.url)
    r = client.post(f"{BASE}/{endpoint['id']}/test", headers=tenant.headers)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["event_type"] == "webhook.test"
    run_worker(hooks_queue)  # enqueued after the request's commit
    deliver_all(hooks_queue, tenant)
    (got,) = pinged.requests
    doc = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert doc["type"] == "webhook.test"
    assert doc["data"] == {"endpoint_id": endpoint["id"]}
    assert bystander.requests == []


def test_retry_makes_one_attempt_now_with_the_same_id(
    client: Any, tenant: TenantHandle, make_receiver: Any, hooks_queue: Queue
) -> None:
    receiver = make_receiver()
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    (message,) = _messages(client, tenant, endpoint["id"])
    r = client.post(
        f"{BASE}/{endpoint['id']}/messages/{message['id']}/retry", headers=tenant.headers
    )
    assert r.status_code == 202, r.get_json()
    run_worker(hooks_queue)
    assert len(receiver.requests) == 2
    assert len(set(receiver.ids())) == 1
    r = client.post(
        f"{BASE}/{endpoint['id']}/messages/{uuid.uuid4()}/retry", headers=tenant.headers
    )
    assert r.status_code == 404


def test_rotation_sends_both_signatures_for_24_hours(
    client: Any,
    tenant: TenantHandle,
    receiver: Receiver,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    endpoint = create_endpoint(client, tenant, receiver.url)
    old = endpoint["secret"]
    new = client.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=tenant.headers).get_json()[
        "secret"
    ]
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    got = receiver.requests[-1]
    assert got.headers["webhook-signature"].count("v1,") == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)

    owner_sql(
        owner_engine,
        "UPDATE webhooks.endpoints SET previous_secret_until = now() - interval '1 second' "
        "WHERE id = :e",
        e=endpoint["id"],
    )
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    got = receiver.requests[-1]
    assert got.headers["webhook-signature"].count("v1,") == 1
    Webhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)


def test_deleting_an_endpoint_cancels_its_pending_messages(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    receiver = make_receiver(statuses=[500])
    endpoint = create_endpoint(client, tenant, receiver.url)
    post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert client.delete(f"{BASE}/{endpoint['id']}", headers=tenant.headers).status_code == 204
    with owner_engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM webhooks.messages WHERE endpoint_id = :e"),
            {"e": endpoint["id"]},
        ).scalar_one()
    assert status == "cancelled"
    _make_due(owner_engine, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(receiver.requests) == 1


def test_events_list(client: Any, tenant: TenantHandle) -> None:
    first = post_transaction(client, tenant)
    second = post_transaction(client, tenant)
    r = client.get("/api/v1/webhooks/events", query_string={"limit": 1}, headers=tenant.headers)
    page = r.get_json()
    assert [e["data"]["id"] for e in page["items"]] == [second["id"]]
    r = client.get(
        "/api/v1/webhooks/events",
        query_string={"limit": 1, "cursor": page["next_cursor"]},
        headers=tenant.headers,
    )
    assert [e["data"]["id"] for e in r.get_json()["items"]] == [first["id"]]
    r = client.get("/api/v1/webhooks/events", query_string={"bogus": "1"}, headers=tenant.headers)
    assert r.status_code == 422
    r = client.get(f"/api/v1/webhooks/events/{uuid.uuid4()}", headers=tenant.headers)
    assert r.status_code == 404


def test_payload_bytes_are_stable() -> None:
    stamp = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
    body = delivery.body_of("x.y", stamp, {"b": 1, "a": [1, 2]})
    assert json.loads(body) == {
        "type": "x.y",
        "timestamp": "2026-12-01T09:00:00.123456Z",
        "data": {"b": 1, "a": [1, 2]},
    }
    assert body == delivery.body_of("x.y", stamp, {"b": 1, "a": [1, 2]})


def test_dispatcher_registers_with_the_scheduler() -> None:
    from erp.scheduler import periodic_tasks

    (task,) = [t for t in periodic_tasks() if t.name == "webhooks.sweep"]
    assert task.func == "erp.webhooks.jobs.sweep"
    assert dispatcher.sweep.__module__ == "erp.webhooks.dispatcher"


def test_a_message_made_as_its_endpoint_was_disabled_or_deleted_settles(
    client: Any,
    tenant: TenantHandle,
    make_receiver: Any,
    hooks_queue: Queue,
    owner_engine: Engine,
) -> None:
    """The fan-out read the endpoint before its disabling (or deletion) committed: the
    message it made is pending on an inactive endpoint; the job settles it, sends nothing."""
    off, gone = make_receiver(), make_receiver()
    disabled = create_endpoint(client, tenant, off.url)
    deleted = create_endpoint(client, tenant, gone.url)
    post_transaction(client, tenant)
    dispatcher.dispatch_tenant(tenant.id)
    owner_sql(
        owner_engine,
        "UPDATE webhooks.endpoints SET disabled = true, disabled_reason = 'manual' WHERE id = :e",
        e=disabled["id"],
    )
    owner_sql(
        owner_engine,
        "UPDATE webhooks.endpoints SET deleted_at = now() WHERE id = :e",
        e=deleted["id"],
    )
    run_worker(hooks_queue)
    assert off.requests == []
    assert gone.requests == []
    with owner_engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text(
                    "SELECT endpoint_id::text, status FROM webhooks.messages WHERE tenant_id = :t"
                ),
                {"t": tenant.id},
            ).all()
        )
    assert statuses == {disabled["id"]: "failed", deleted["id"]: "cancelled"}
