"""Fixtures of the webhooks tests: real HTTP receivers on 127.0.0.1, the webhooks queue,
a burst RQ worker, and helpers to make endpoints and events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text

from erp.config import Settings
from erp.extensions import queue
from erp.http import ErpFlask
from erp.webhooks import dispatcher, sender
from tests.conftest import TenantHandle


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.perf_counter() when the request's body had arrived
    at: float = field(default_factory=time.perf_counter)


@dataclass
class Receiver:
    """Records every POST; answers with `statuses` in turn (then the last one forever)."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    answer: bytes = b"ok"
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.next_status()
            self.send_response(status)
            for k, v in receiver.extra_headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(receiver.answer)))
            self.end_headers()
            self.wfile.write(receiver.answer)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def make(**kwargs: Any) -> Receiver:
        receiver = Receiver(url="", **kwargs)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        server.daemon_threads = True
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return receiver

    yield make
    sender.IDLE.clear()  # connections kept between jobs go with their receivers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
def hooks_queue(app: ErpFlask) -> Iterator[Queue]:
    """This test worker's webhooks queue, empty before and after the test, and so is
    its started-job registry (a test that SIGKILLs a real `erp worker` leaves its job
    there until the entry's TTL, minutes; a later test waiting for the registry to
    drain would wait for it). The app's context stays pushed (as tests/core's
    `default_queue`): jobs run in this process, and the dispatcher called by the test,
    use the session app's database and keys."""
    with app.app_context():
        q = queue.queue("webhooks")
        q.empty()
        q.connection.delete(q.started_job_registry.key)
        yield q
        q.empty()
        q.connection.delete(q.started_job_registry.key)


def run_worker(q: Queue) -> None:
    """Run every queued job in this process (RQ's SimpleWorker, burst mode)."""
    SimpleWorker([q], connection=q.connection, serializer=JSONSerializer).work(burst=True)
    failed = q.failed_job_registry.get_job_ids()
    assert failed == [], [q.fetch_job(j).latest_result() for j in failed]  # type: ignore[union-attr]


def deliver_all(q: Queue, *tenants: TenantHandle) -> None:
    """The dispatcher for these tenants, then the worker, as `erp scheduler` + `erp worker`."""
    for t in tenants:
        dispatcher.dispatch_tenant(t.id)
    run_worker(q)


def start_erp_worker(settings: Settings, threads: int | None = None) -> subprocess.Popen[bytes]:
    """A real `erp worker` (as in production: WORKER_THREADS jobs at once in threads;
    `threads` 0: RQ's forking work horses) on the test's database, Redis and queues, in
    its own process group (kill the group to stop it and any work horse)."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "QUEUE_PREFIX": settings.queue_prefix,
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    erp = os.path.join(os.path.dirname(sys.executable), "erp")
    args = [erp, "worker"] if threads is None else [erp, "worker", "--threads", str(threads)]
    return subprocess.Popen(
        args,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def create_endpoint(client: Any, tenant: TenantHandle, url: str, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/webhooks/endpoints", json={"url": url, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.get_json()
    return dict(r.get_json())


def post_transaction(client: Any, tenant: TenantHandle, amount: int = 1_000) -> dict[str, Any]:
    """A posted two-entry transaction (cash against revenue of the default chart)."""
    accounts = {
        a["code"]: a["id"]
        for a in client.get("/api/v1/ledger/accounts?limit=200", headers=tenant.headers).get_json()[
            "items"
        ]
    }
    r = client.post(
        "/api/v1/ledger/transactions",
        json={
            "description": f"sale {uuid.uuid4().hex[:6]}",
            "entries": [
                {"account_id": accounts["1000"], "amount": amount, "currency": "USD"},
                {"account_id": accounts["4000"], "amount": -amount, "currency": "USD"},
            ],
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.get_json()
    return dict(r.get_json())


def owner_sql(owner_engine: Engine, sql: str, **params: Any) -> None:
    """Move time for a test (due times, leases), as the superuser."""
    with owner_engine.begin() as conn:
        conn.execute(text(sql), params)
