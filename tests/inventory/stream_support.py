"""Fixtures of the stream tests: a real threaded HTTP server of an app whose streams
ping quickly, an SSE client on a thread, and events written by the outbox's `emit`."""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from erp import create_app, streams
from erp.config import Settings
from erp.db import tenant_context
from erp.extensions import db
from erp.extensions import queue as job_queue
from erp.http import ErpFlask
from erp.webhooks.services import emit
from tests.conftest import TenantHandle

#: Generous: how fast events arrive is the benchmark's business, not the tests'. An
#: event waits for every older write transaction of the PostgreSQL cluster to end
#: (the xmin watermark), and a shared test server runs other suites' transactions too.
WAIT_S = 60.0
PING_S = 0.3


@pytest.fixture(scope="module")
def stream_app(settings: Settings) -> ErpFlask:
    app = create_app(settings, STREAM_PING_S=PING_S, STREAM_MAX_CLIENTS=12)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def live_url(stream_app: ErpFlask) -> Iterator[str]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, stream_app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        streams.stop_hubs()
        server.shutdown()
        server.server_close()
        thread.join(10)
        with stream_app.app_context():
            deadline = time.monotonic() + WAIT_S
            while streams.gate.active and time.monotonic() < deadline:
                time.sleep(0.05)  # the streams' last reads return their connections
            db.dispose()
            job_queue.redis.close()


@dataclass
class Frame:
    event: str
    id: str | None
    data: Any


@dataclass
class SseClient:
    """Reads one stream on a thread; `frames` in arrival order, `comments` too."""

    url: str
    headers: dict[str, str]
    status: int = 0
    frames: list[Frame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    inbox: queue.Queue[Frame | str] = field(default_factory=queue.Queue)
    _conn: http.client.HTTPConnection | None = None
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None

    def start(self) -> SseClient:
        parts = urlsplit(self.url)
        self._conn = http.client.HTTPConnection(parts.netloc, timeout=WAIT_S * 3)
        self._conn.request(
            "GET",
            parts.path + (f"?{parts.query}" if parts.query else ""),
            headers={"Accept": "text/event-stream", **self.headers},
        )
        self._sock = self._conn.sock  # getresponse() may drop the connection's reference
        response = self._conn.getresponse()
        self.status = response.status
        assert response.status == 200, response.read()
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()
        return self

    def _read(self, response: http.client.HTTPResponse) -> None:
        event, ident, data = "message", None, []
        try:
            while line := response.readline():
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.comments.append(text[1:].strip())
                    self.inbox.put(text)
                elif text.startswith("id:"):
                    ident = text[3:].strip()
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].strip())
                elif text == "" and data:
                    frame = Frame(event, ident, json.loads("\n".join(data)))
                    self.frames.append(frame)
                    self.inbox.put(frame)
                    event, ident, data = "message", None, []
        except Exception:  # http.client fails in several ways once the socket is closed
            return  # closed by the test

    def next_frame(self) -> Frame:
        deadline = time.monotonic() + WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(item, Frame):
                return item
        raise AssertionError(f"no event within {WAIT_S} s; had {self.frames}")

    def frames_until(self, event_id: uuid.UUID) -> list[Frame]:
        """Every frame received up to and including the one of `event_id`."""
        while not any(f.id == str(event_id) for f in self.frames):
            self.next_frame()
        index = next(i for i, f in enumerate(self.frames) if f.id == str(event_id))
        return self.frames[: index + 1]

    def ids(self) -> list[str]:
        return [f.id for f in self.frames if f.id is not None]

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(WAIT_S)


@pytest.fixture
def open_stream(live_url: str) -> Iterator[Callable[..., SseClient]]:
    opened: list[SseClient] = []

    def open_(tenant: TenantHandle, query: str = "", **headers: str) -> SseClient:
        url = f"{live_url}/api/v1/inventory/events" + (f"?{query}" if query else "")
        client = SseClient(url, {**tenant.headers, **headers}).start()
        opened.append(client)
        # the first frame (`retry:`) has no data: the headers were sent, the cursor set
        return client

    yield open_
    for client in opened:
        client.close()
    # Each test gives its slots back before the next opens streams: the server side
    # of a closed stream ends at its next write (within a ping) or its client check.
    deadline = time.monotonic() + WAIT_S
    while streams.gate.active and time.monotonic() < deadline:
        time.sleep(0.05)


def stock_changed(
    item_id: uuid.UUID | None = None, location_id: uuid.UUID | None = None, on_hand: int = 1
) -> dict[str, Any]:
    return {
        "item_id": str(item_id or uuid.uuid4()),
        "sku": "SKU-1",
        "location_id": str(location_id or uuid.uuid4()),
        "on_hand": on_hand,
        "reserved": 0,
        "available": on_hand,
        "delta": {"on_hand": 1, "reserved": 0},
        "sources": [{"type": "move", "id": str(uuid.uuid4())}],
    }


def commit_event(
    app: ErpFlask,
    tenant: TenantHandle,
    payload: dict[str, Any] | None = None,
    event_type: str = "stock.changed",
) -> uuid.UUID:
    """One committed transaction writing one event through the outbox's `emit`."""
    with app.app_context():
        return db.unit_of_work(
            lambda s: emit(s, event_type, payload or stock_changed()), tenant=tenant.id
        )


@contextmanager
def open_transaction(app: ErpFlask, tenant: TenantHandle) -> Iterator[Session]:
    """A transaction of `tenant` held open by the test, which commits or rolls it back."""
    with app.app_context(), tenant_context(tenant.id), db.new_session() as s:
        try:
            yield s
        finally:
            if s.in_transaction():
                s.rollback()
