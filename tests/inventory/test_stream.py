"""GET /api/v1/inventory/events: live stock events over SSE (API.md, Inventory, "Real
time"; DESIGN.md §4). Through a real threaded HTTP server, events written by the
outbox's `emit` in real transactions; timeouts are generous (latency: bench/)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from erp import create_app, streams
from erp.config import Settings
from erp.extensions import db
from erp.extensions import queue as job_queue
from erp.http import ErpFlask
from erp.webhooks.services import emit
from tests.conftest import TenantHandle, make_tenant
from tests.inventory.stream_support import (
    SseClient,
    commit_event,
    open_transaction,
    stock_changed,
)

OpenStream = Callable[..., SseClient]


def test_a_stream_carries_its_tenants_committed_events_and_never_anothers(
    stream_app: ErpFlask, tenant: TenantHandle, other_tenant: TenantHandle, open_stream: OpenStream
) -> None:
    mine, theirs = open_stream(tenant), open_stream(other_tenant)
    payload = stock_changed(on_hand=7)
    foreign = [commit_event(stream_app, other_tenant) for _ in range(3)]
    own = [
        commit_event(stream_app, tenant, payload),
        commit_event(stream_app, tenant, event_type="stock.low", payload={"item_id": "x"}),
    ]
    # B's events committed before A's last one, so a leak would have arrived first
    got = mine.frames_until(own[-1])
    assert [f.id for f in got] == [str(e) for e in own]
    assert (got[0].event, got[0].data) == ("stock.changed", payload)
    assert got[1].event == "stock.low"
    theirs.frames_until(foreign[-1])
    assert theirs.ids() == [str(e) for e in foreign]
    assert not set(mine.ids()) & {str(e) for e in foreign}


def test_a_resume_misses_nothing_when_a_later_transaction_commits_first(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    first = open_stream(tenant)
    before = commit_event(stream_app, tenant)
    first.frames_until(before)
    with open_transaction(stream_app, tenant) as early:
        slow = emit(early, "stock.changed", stock_changed())  # its transaction id is older
        early.flush()
        fast = commit_event(stream_app, tenant)  # a later transaction, committed first
        # Give a stream that served `fast` now (ahead of `slow`) every chance to do so.
        time.sleep(1.0)
        last_seen = first.ids()[-1]
        first.close()
        early.commit()
    resumed = open_stream(tenant, **{"Last-Event-ID": last_seen})
    after = commit_event(stream_app, tenant)
    got = [f.id for f in resumed.frames_until(after)]
    # nothing lost across the two connections, nothing twice, in commit-safe order
    assert first.ids() + got == [str(e) for e in (before, slow, fast, after)]


def test_streams_serve_out_of_order_commits_in_transaction_order(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    """Three streams of one tenant at one cursor (their reads are shared) see the same."""
    live = [open_stream(tenant) for _ in range(3)]
    with open_transaction(stream_app, tenant) as early:
        slow = emit(early, "stock.changed", stock_changed())
        early.flush()
        fast = commit_event(stream_app, tenant)
        early.commit()
    later = commit_event(stream_app, tenant)
    for stream in live:
        assert [f.id for f in stream.frames_until(later)] == [str(e) for e in (slow, fast, later)]


def test_rolled_back_work_never_reaches_a_stream(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    live = open_stream(tenant)
    with open_transaction(stream_app, tenant) as doomed:
        lost = emit(doomed, "stock.changed", stock_changed())
        doomed.flush()
        doomed.rollback()
    kept = commit_event(stream_app, tenant)
    assert [f.id for f in live.frames_until(kept)] == [str(kept)]
    assert str(lost) not in live.ids()


def test_filters_keep_the_items_and_locations_asked_for(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    item, location = uuid.uuid4(), uuid.uuid4()
    by_item = open_stream(tenant, f"item_id={item}")
    by_both = open_stream(tenant, f"item_id={item}&location_id={location}")
    other_item = commit_event(stream_app, tenant, stock_changed(location_id=location))
    elsewhere = commit_event(stream_app, tenant, stock_changed(item_id=item))
    here = commit_event(stream_app, tenant, stock_changed(item_id=item, location_id=location))
    low = commit_event(stream_app, tenant, {"item_id": str(item), "sku": "S"}, "stock.low")
    assert [f.id for f in by_item.frames_until(low)] == [str(elsewhere), str(here), str(low)]
    assert [f.id for f in by_both.frames_until(low)] == [str(here), str(low)]
    assert str(other_item) not in by_item.ids() + by_both.ids()


def test_an_idle_stream_sends_pings(tenant: TenantHandle, open_stream: OpenStream) -> None:
    live = open_stream(tenant)
    deadline = time.monotonic() + 20
    while live.comments.count("ping") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.comments.count("ping") >= 2
    assert live.frames == []


def _first_frames(
    live: SseClient, stream_app: ErpFlask, tenant: TenantHandle
) -> tuple[str, list[str]]:
    marker = commit_event(stream_app, tenant)
    got = live.frames_until(marker)
    return got[0].event, [f.id for f in got if f.id]


def test_an_unknown_or_foreign_last_event_id_starts_with_a_reset(
    stream_app: ErpFlask, tenant: TenantHandle, other_tenant: TenantHandle, open_stream: OpenStream
) -> None:
    foreign = commit_event(stream_app, other_tenant)
    for last in (uuid.uuid4(), foreign):
        live = open_stream(tenant, **{"Last-Event-ID": str(last)})
        first, ids = _first_frames(live, stream_app, tenant)
        assert first == "reset"
        assert str(foreign) not in ids


def test_a_last_event_id_older_than_an_hour_starts_with_a_reset(
    stream_app: ErpFlask, tenant: TenantHandle, owner_engine: Engine, open_stream: OpenStream
) -> None:
    old = uuid.uuid4()
    with owner_engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO webhooks.outbox_events (tenant_id, id, event_type, payload,"
                " occurred_at) VALUES (:t, :id, 'stock.changed', '{}', now() - interval '61 min')"
            ),
            {"t": tenant.id, "id": old},
        )
    live = open_stream(tenant, **{"Last-Event-ID": str(old)})
    first, ids = _first_frames(live, stream_app, tenant)
    assert first == "reset"
    assert str(old) not in ids
    # a recent one resumes without a reset
    recent = commit_event(stream_app, tenant)
    again = open_stream(tenant, **{"Last-Event-ID": str(recent)})
    first, ids = _first_frames(again, stream_app, tenant)
    assert first == "stock.changed"
    assert str(recent) not in ids


def _problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body: dict[str, Any] = r.get_json()
    assert body["type"].endswith(slug)
    return body


def test_bad_input_is_a_problem_never_a_stream(stream_app: ErpFlask, tenant: TenantHandle) -> None:
    client = stream_app.test_client()
    url = "/api/v1/inventory/events"
    body = _problem(
        client.get(url, headers={**tenant.headers, "Last-Event-ID": "nope"}), 422, "validation"
    )
    assert "Last-Event-ID" in str(body["errors"])
    for query in ("item_id=nope", "location_id=1", "item_id=%00", "colour=red"):
        _problem(client.get(f"{url}?{query}", headers=tenant.headers), 422, "validation")
    _problem(client.get(url), 401, "unauthorized")


def test_the_stream_needs_the_inventory_read_scope(
    stream_app: ErpFlask, ops_headers: dict[str, str]
) -> None:
    client = stream_app.test_client()
    ledger_only = make_tenant(client, ops_headers, scopes=["ledger:read"])
    r = client.get("/api/v1/inventory/events", headers=ledger_only.headers)
    _problem(r, 403, "forbidden")


def test_streams_beyond_the_process_limit_are_refused(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    limit = stream_app.config["STREAM_MAX_CLIENTS"]
    deadline = time.monotonic() + 20
    while streams.gate.active and time.monotonic() < deadline:
        time.sleep(0.05)  # earlier tests' streams end at their next write (a ping)
    for _ in range(limit):
        open_stream(tenant)
    r = stream_app.test_client().get("/api/v1/inventory/events", headers=tenant.headers)
    _problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "5"


def test_an_event_held_back_by_another_tenants_open_work_arrives_when_it_ends(
    stream_app: ErpFlask, tenant: TenantHandle, other_tenant: TenantHandle, open_stream: OpenStream
) -> None:
    """The older transaction that holds the watermark back is another tenant's, and it
    rolls back: no notification ever names this tenant again, yet the event arrives."""
    live = open_stream(tenant)
    with open_transaction(stream_app, other_tenant) as blocker:
        emit(blocker, "stock.changed", stock_changed())
        blocker.flush()
        mine = commit_event(stream_app, tenant)
        time.sleep(0.5)  # the stream reads, and must hold `mine` back
        blocker.rollback()
    assert [f.id for f in live.frames_until(mine)] == [str(mine)]


def test_a_new_stream_never_replays_what_committed_before_it_began(
    stream_app: ErpFlask, tenant: TenantHandle, open_stream: OpenStream
) -> None:
    with open_transaction(stream_app, tenant) as early:  # keeps the watermark low
        emit(early, "stock.changed", stock_changed())
        early.flush()
        before = commit_event(stream_app, tenant)
        live = open_stream(tenant)
        after = commit_event(stream_app, tenant)
        early.rollback()
    assert [f.id for f in live.frames_until(after)] == [str(after)]
    assert str(before) not in live.ids()


def test_a_stream_notices_its_client_went_without_writing() -> None:
    """What frees a stream's thread within a second, not at the next ping."""
    server_side, client_side = socket.socketpair()
    with server_side:
        assert not streams.client_gone(server_side)
        client_side.close()
        assert streams.client_gone(server_side)


def test_a_stream_ends_after_its_maximum_age(settings: Settings, tenant: TenantHandle) -> None:
    """So that a revoked key or a suspended tenant stops streaming at the reconnect."""
    app = create_app(settings, STREAM_MAX_AGE_S=1.0, STREAM_PING_S=0.3)
    try:
        r = app.test_client().get(
            "/api/v1/inventory/events", headers=tenant.headers, buffered=False
        )
        assert r.status_code == 200
        body = b"".join(r.response)  # returns: the server ended the stream
        r.close()
        assert body.startswith(b"retry: 2000\n\n")
        assert b": ping\n\n" in body
    finally:
        with app.app_context():
            db.dispose()
            job_queue.redis.close()
