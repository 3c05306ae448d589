"""Helpers for the ledger's concurrency tests: a real threaded HTTP server, a small
HTTP client, threads that start together, and SQL reads as erp_app in a tenant.

The Flask test client runs requests one after another in the test's thread; races
need real sockets, real server threads and real database connections.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from erp.http import ErpFlask
from tests.conftest import TenantHandle

T = TypeVar("T")


class _QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr for hundreds of requests."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def serve(app: ErpFlask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) from a background thread; yields the base URL."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="ledger-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def slug(self) -> str:
        """The problem type's slug, or "" for a success."""
        if not isinstance(self.body, dict) or "type" not in self.body:
            return ""
        return str(self.body["type"]).rsplit("/", 1)[-1]


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Reply:
    """One request on its own connection (the dev server speaks HTTP/1.0)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        sent = {"Accept": "application/json", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
        reply_headers = {k.lower(): v for k, v in resp.getheaders()}
        return Reply(resp.status, reply_headers, json.loads(raw) if raw else None)
    finally:
        conn.close()


def together(n: int, work: Callable[[int], T], timeout: float = 120) -> list[T]:
    """Run work(0..n-1) in n threads released at once by a barrier; results in order.

    An exception in any thread is re-raised here, after every thread has finished.
    """
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"ledger-race-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing thread did not finish"
    if errors:
        raise errors[0]
    return results


@dataclass
class LiveBooks:
    """A tenant's ledger through the live server."""

    base_url: str
    tenant: TenantHandle
    accounts: dict[str, str] = field(default_factory=dict)  # code -> id

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        merged = {**self.tenant.headers, **(headers or {})}
        return request(self.base_url, method, f"/api/v1/ledger{path}", body, merged)

    def transfer_body(
        self, lines: list[tuple[str, int]], currency: str = "USD", **extra: Any
    ) -> dict[str, Any]:
        return {
            "description": extra.pop("description", "transfer"),
            "entries": [
                {
                    "account_id": self.accounts.get(code, code),
                    "amount": amount,
                    "currency": currency,
                }
                for code, amount in lines
            ],
            **extra,
        }

    def post(self, lines: list[tuple[str, int]], **extra: Any) -> Reply:
        return self.call("POST", "/transactions", self.transfer_body(lines, **extra))

    def open_account(self, code: str, type_: str = "asset", guard: str = "none") -> str:
        reply = self.call(
            "POST",
            "/accounts",
            {
                "code": code,
                "name": f"Account {code}",
                "type": type_,
                "currency": "USD",
                "guard": guard,
            },
        )
        assert reply.status == 201, reply.body
        self.accounts[code] = reply.body["id"]
        return str(reply.body["id"])

    def balances(self) -> dict[str, dict[str, Any]]:
        """Account id -> its balance, for every account, from the accounts list."""
        reply = self.call("GET", "/accounts?limit=200")
        assert reply.status == 200, reply.body
        assert reply.body["next_cursor"] is None
        return {a["id"]: a["balance"] for a in reply.body["items"]}

    def balance(self, code: str) -> dict[str, Any]:
        reply = self.call("GET", f"/accounts/{self.accounts[code]}/balance")
        assert reply.status == 200, reply.body
        return dict(reply.body)


def tenant_rows(app_url: str, tenant: uuid.UUID, sql: str, params: Any = None) -> list[Any]:
    """Run a read as erp_app with the tenant GUC set as the app sets it (RLS applies)."""
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        return list(conn.execute(sql, params).fetchall())


def tenant_scalar(app_url: str, tenant: uuid.UUID, sql: str, params: Any = None) -> Any:
    rows = tenant_rows(app_url, tenant, sql, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def entry_sums(
    app_url: str, tenant: uuid.UUID, as_of: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per account id: the sum of its posted and of its pending entries (effective_at <= as_of),
    read from the entries themselves, not from the balance deltas."""
    rows = tenant_rows(
        app_url,
        tenant,
        """SELECT e.account_id::text,
                  coalesce(sum(e.amount) FILTER (WHERE t.status = 'posted'), 0),
                  coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending'), 0)
             FROM ledger.entries e
             JOIN ledger.transactions t
               ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
            WHERE %(as_of)s::timestamptz IS NULL OR e.effective_at <= %(as_of)s
            GROUP BY e.account_id""",
        {"as_of": as_of},
    )
    return {r[0]: {"posted": int(r[1]), "pending": int(r[2])} for r in rows}
