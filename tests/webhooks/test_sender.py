"""The sender's kept-alive connections, against real HTTP servers on 127.0.0.1: one
connection carries many attempts, is reopened when the receiver closed it, closed
after an answer too long to drain; and a delivery job's attempts, IN_FLIGHT at once
over as many connections, never more."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rq import Queue

from erp.webhooks import delivery, sender
from tests.conftest import TenantHandle
from tests.webhooks.conftest import create_endpoint, deliver_all, post_transaction

ALLOWED = ("127.0.0.1",)


@dataclass
class Server:
    url: str
    #: how many TCP connections the server accepted
    connections: int = 0
    #: webhook-id of every request, in arrival order
    ids: list[str] = field(default_factory=list)
    #: close the connection after each answer without saying so (an idle timeout)
    drop_after_answer: bool = False
    answer: bytes = b"ok"
    #: seconds each answer takes
    delay: float = 0.0
    #: requests being answered at once: now and the most seen
    busy: int = 0
    most_busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with state.lock:
                state.connections += 1

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.ids.append(self.headers.get("webhook-id", ""))
                state.busy += 1
                state.most_busy = max(state.most_busy, state.busy)
            time.sleep(state.delay)
            with state.lock:
                state.busy -= 1
            self.send_response(200)
            self.send_header("content-length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)
            if state.drop_after_answer:
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    sender.IDLE.clear()
    httpd.shutdown()
    httpd.server_close()


def _post_many(poster: sender.Poster, url: str, n: int) -> list[sender.Outcome]:
    return [poster.post(url, b"{}", {"webhook-id": f"msg_{i}"}) for i in range(n)]


def test_one_connection_carries_a_batch(server: Server) -> None:
    with sender.Poster(ALLOWED) as poster:
        outcomes = _post_many(poster, server.url, 20)
    assert all(o.succeeded for o in outcomes)
    assert server.ids == [f"msg_{i}" for i in range(20)]
    assert (poster.opened, server.connections) == (1, 1)


def test_a_connection_the_receiver_closed_is_reopened_and_nothing_is_lost(
    server: Server,
) -> None:
    server.drop_after_answer = True
    with sender.Poster(ALLOWED) as poster:
        outcomes = _post_many(poster, server.url, 5)
    assert all(o.succeeded for o in outcomes), outcomes
    assert server.ids == [f"msg_{i}" for i in range(5)]
    assert poster.opened == server.connections == 5


def test_an_answer_too_long_to_drain_closes_the_connection(server: Server) -> None:
    server.answer = b"x" * (sender.BODY_KEPT + sender.DRAIN_LIMIT + 1)
    with sender.Poster(ALLOWED) as poster:
        outcomes = _post_many(poster, server.url, 3)
    assert [o.body for o in outcomes] == ["x" * sender.BODY_KEPT] * 3
    assert poster.opened == server.connections == 3


def test_a_long_answer_within_the_drain_limit_keeps_the_connection(server: Server) -> None:
    server.answer = b"y" * (sender.BODY_KEPT * 3)
    with sender.Poster(ALLOWED) as poster:
        outcomes = _post_many(poster, server.url, 3)
    assert [o.body for o in outcomes] == ["y" * sender.BODY_KEPT] * 3
    assert poster.opened == server.connections == 1


def test_every_attempt_on_a_kept_connection_is_still_checked(server: Server) -> None:
    """The address check is per attempt: a host not allowed is refused even though an
    open connection to that very address exists."""
    port = server.url.split(":")[2].split("/")[0]
    with sender.Poster(ALLOWED) as poster:
        assert poster.post(server.url, b"{}", {"webhook-id": "a"}).succeeded
        poster.allowed = ()
        refused = poster.post(f"http://localhost:{port}/hooks", b"{}", {"webhook-id": "b"})
        assert refused.error == "refused_address"
        literal = poster.post(server.url, b"{}", {"webhook-id": "c"})
        assert literal.error == "refused_address"
    assert server.ids == ["a"]


def test_a_delivery_job_keeps_in_flight_attempts_to_the_cap_on_kept_connections(
    client: Any, tenant: TenantHandle, server: Server, hooks_queue: Queue
) -> None:
    """12 messages to a receiver taking 0.15 s each: IN_FLIGHT at once (never more),
    over IN_FLIGHT connections, every message once, in about 12 / IN_FLIGHT rounds."""
    server.delay = 0.15
    create_endpoint(client, tenant, server.url)
    for _ in range(12):
        post_transaction(client, tenant)
    started = time.monotonic()
    deliver_all(hooks_queue, tenant)
    took = time.monotonic() - started
    assert len(server.ids) == len(set(server.ids)) == 12
    assert server.most_busy == delivery.IN_FLIGHT
    assert server.connections == delivery.IN_FLIGHT
    assert took < 12 * server.delay


def test_the_next_job_to_a_receiver_reuses_the_connections_the_last_one_kept(
    client: Any,
    tenant: TenantHandle,
    server: Server,
    hooks_queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between jobs the process keeps the open connections (sender.IDLE): a second
    job to the same receiver connects no more; kept past IDLE_S, they are not used."""
    server.delay = 0.05
    create_endpoint(client, tenant, server.url)
    for _ in range(8):
        post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert server.connections == delivery.IN_FLIGHT
    for _ in range(8):
        post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(server.ids) == len(set(server.ids)) == 16
    assert server.connections == delivery.IN_FLIGHT  # the same connections again
    monkeypatch.setattr(sender.IdlePosters, "IDLE_S", 0.0)
    time.sleep(0.01)
    for _ in range(8):
        post_transaction(client, tenant)
    deliver_all(hooks_queue, tenant)
    assert len(server.ids) == len(set(server.ids)) == 24
    assert server.connections == 2 * delivery.IN_FLIGHT  # idle too long: new ones


def test_idle_connections_are_capped_per_origin_and_closed_once_expired(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle = sender.IdlePosters()
    posters = []
    for _ in range(sender.IdlePosters.PER_ORIGIN + 2):
        poster = sender.Poster(ALLOWED)
        assert poster.post(server.url, b"{}", {"webhook-id": "msg_x"}).succeeded
        posters.append(poster)
    for poster in posters:
        idle.give(poster)
    # the two oldest were closed to keep PER_ORIGIN
    assert [p.origin is None for p in posters[:3]] == [True, True, False]
    assert idle.take(server.url, ALLOWED) is posters[-1]  # the most recent first
    monkeypatch.setattr(sender.IdlePosters, "IDLE_S", 0.0)
    time.sleep(0.01)
    fresh = idle.take(server.url, ALLOWED)  # everything kept has expired: closed
    assert fresh not in posters
    assert all(p.origin is None for p in posters[:-1])
    posters[-1].close()
    idle.give(posters[-1])  # closed: nothing to keep
    assert idle.take(server.url, ALLOWED).origin is None
