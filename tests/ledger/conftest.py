"""Ledger fixtures: a tenant on the default chart of accounts, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import TenantHandle, make_tenant


@dataclass
class Books:
    client: Any
    tenant: TenantHandle
    accounts: dict[str, str]  # code -> id

    def post(self, lines: list[tuple[str, int]], expect: int = 201, **extra: Any) -> Any:
        currency = extra.pop("currency", "USD")
        body = {
            "description": extra.pop("description", "test"),
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
        r = self.client.post("/api/v1/ledger/transactions", json=body, headers=self.tenant.headers)
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def balance(self, code: str, **query: str) -> dict[str, Any]:
        r = self.client.get(
            f"/api/v1/ledger/accounts/{self.accounts[code]}/balance",
            query_string=query,
            headers=self.tenant.headers,
        )
        assert r.status_code == 200, r.get_json()
        return dict(r.get_json())

    def get(self, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        merged = {**self.tenant.headers, **(headers or {})}
        return self.client.get(f"/api/v1/ledger{path}", headers=merged, **kw)

    def call(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.open(
            f"/api/v1/ledger{path}", method=method, json=json, headers=self.tenant.headers, **kw
        )


def open_books(client: Any, ops_headers: dict[str, str], currency: str = "USD") -> Books:
    tenant = make_tenant(client, ops_headers, currency=currency)
    r = client.get("/api/v1/ledger/accounts?limit=200", headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    return Books(client, tenant, {a["code"]: a["id"] for a in r.get_json()["items"]})


@pytest.fixture
def books(client: Any, ops_headers: dict[str, str]) -> Books:
    return open_books(client, ops_headers)
