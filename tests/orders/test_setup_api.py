"""Tax rates, customers and sales channels through the API (API.md, Orders): shapes,
409 on a taken code, PATCH limits, the channel secrets (made and shown once for a
generic channel, given and never shown for shopify, rotation's 24-hour overlap),
customer_for's find-or-create, and the orders:* scopes."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.extensions import db
from erp.http import ErpFlask
from erp.orders import services
from erp.orders.models import Channel
from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import assert_problem, owner_sql
from tests.ledger.checks import assert_field_problem

API = "/api/v1"
Call = Callable[..., Any]


@pytest.fixture
def call(client: Any, tenant: TenantHandle) -> Call:
    def go(method: str, path: str, body: Any = None, **headers: str) -> Any:
        return client.open(
            f"{API}{path}", method=method, json=body, headers={**tenant.headers, **headers}
        )

    return go


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.get_json()
    return r.get_json()


# -- tax rates ---------------------------------------------------------------------------


def test_tax_rates_are_made_read_listed_and_patched(call: Call) -> None:
    vat = ok(call("POST", "/tax-rates", {"code": "VAT20", "name": "VAT", "rate_ppm": 200000}), 201)
    assert set(vat) == {"id", "code", "name", "rate_ppm", "archived", "created_at"}
    assert (vat["code"], vat["name"], vat["rate_ppm"], vat["archived"]) == (
        "VAT20",
        "VAT",
        200000,
        False,
    )
    ny = ok(call("POST", "/tax-rates", {"code": "NY", "name": "NY", "rate_ppm": 88750}), 201)
    assert ok(call("GET", f"/tax-rates/{vat['id']}")) == vat
    listed = ok(call("GET", "/tax-rates"))
    assert [r["id"] for r in listed["items"]] == [ny["id"], vat["id"]]
    assert listed["next_cursor"] is None

    assert ok(call("PATCH", f"/tax-rates/{vat['id']}", {})) == vat
    renamed = ok(call("PATCH", f"/tax-rates/{vat['id']}", {"name": "Standard", "archived": True}))
    assert (renamed["name"], renamed["archived"], renamed["rate_ppm"]) == ("Standard", True, 200000)
    assert [r["id"] for r in ok(call("GET", "/tax-rates?include_archived=false"))["items"]] == [
        ny["id"]
    ]
    page = ok(call("GET", "/tax-rates?limit=1"))
    assert [r["id"] for r in page["items"]] == [ny["id"]]
    rest = ok(call("GET", f"/tax-rates?limit=1&cursor={page['next_cursor']}"))
    assert [r["id"] for r in rest["items"]] == [vat["id"]]


def test_a_taken_code_is_409_naming_code(call: Call) -> None:
    ok(call("POST", "/tax-rates", {"code": "STD", "name": "Standard", "rate_ppm": 1}), 201)
    r = call("POST", "/tax-rates", {"code": "STD", "name": "Other", "rate_ppm": 2})
    assert_field_problem(r, 409, "conflict", "code")


def test_concurrent_creates_of_one_code_give_one_rate_and_one_409(
    app: ErpFlask, tenant: TenantHandle
) -> None:
    def create(_: int) -> int:
        r = app.test_client().post(
            f"{API}/tax-rates",
            json={"code": "RACE", "name": "Race", "rate_ppm": 5},
            headers=tenant.headers,
        )
        return int(r.status_code)

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(create, range(4)))
    assert statuses == [201, 409, 409, 409]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "bad code", "name": "x", "rate_ppm": 1}, "code"),
        ({"code": "X", "name": "", "rate_ppm": 1}, "name"),
        ({"code": "X", "name": "x", "rate_ppm": -1}, "rate_ppm"),
        ({"code": "X", "name": "x", "rate_ppm": 1_000_001}, "rate_ppm"),
        ({"code": "X", "name": "x", "rate_ppm": 1.5}, "rate_ppm"),
        ({"code": "X", "name": "x", "rate_ppm": "20"}, "rate_ppm"),
        ({"code": "X", "name": "x", "rate_ppm": True}, "rate_ppm"),
        ({"code": "X", "name": "x"}, "rate_ppm"),
        ({"code": "X", "name": "x", "rate_ppm": 1, "archived": False}, "archived"),
    ],
)
def test_bad_tax_rate_bodies_are_422_naming_the_field(
    call: Call, body: dict[str, Any], field: str
) -> None:
    assert_field_problem(call("POST", "/tax-rates", body), 422, "validation", field)


@pytest.mark.parametrize("body", [{"rate_ppm": 5}, {"code": "NEW"}, {"name": None}])
def test_a_rate_and_its_code_never_change(call: Call, body: dict[str, Any]) -> None:
    rate = ok(call("POST", "/tax-rates", {"code": "FIX", "name": "Fixed", "rate_ppm": 7}), 201)
    r = call("PATCH", f"/tax-rates/{rate['id']}", body)
    assert_field_problem(r, 422, "validation", next(iter(body)))
    assert ok(call("GET", f"/tax-rates/{rate['id']}")) == rate


def test_unknown_and_malformed_ids(call: Call) -> None:
    for path in ("tax-rates", "customers", "channels"):
        assert_problem(call("GET", f"/{path}/{uuid.uuid4()}"), 404, "not-found")
        r = call("GET", f"/{path}/not-a-uuid")
        assert r.status_code == 422, r.get_json()
    assert_problem(call("PATCH", f"/tax-rates/{uuid.uuid4()}", {}), 404, "not-found")
    assert_problem(call("PATCH", f"/channels/{uuid.uuid4()}", {}), 404, "not-found")
    assert_problem(call("POST", f"/channels/{uuid.uuid4()}/rotate-secret"), 404, "not-found")


# -- customers ---------------------------------------------------------------------------


def _in_tenant(app: ErpFlask, tenant: TenantHandle, fn: Callable[[Any], Any]) -> Any:
    with app.app_context():
        return db.unit_of_work(fn, tenant=tenant.id)


def test_customer_for_finds_by_email_case_insensitively_or_makes_one(
    app: ErpFlask, call: Call, tenant: TenantHandle
) -> None:
    ada = _in_tenant(app, tenant, lambda s: services.customer_for(s, "Ada", "Ada@Example.com"))
    again = _in_tenant(app, tenant, lambda s: services.customer_for(s, "A. L.", "ada@EXAMPLE.com"))
    assert again == ada  # the first name and spelling stay
    bob = _in_tenant(app, tenant, lambda s: services.customer_for(s, "Bob", "bob@example.com"))
    assert bob.id != ada.id

    got = ok(call("GET", f"/customers/{ada.id}"))
    assert got == {
        "id": str(ada.id),
        "name": "Ada",
        "email": "Ada@Example.com",
        "created_at": got["created_at"],
    }
    found = ok(call("GET", "/customers?email=ADA@example.COM"))
    assert [c["id"] for c in found["items"]] == [str(ada.id)]
    assert ok(call("GET", "/customers?email=nobody@example.com"))["items"] == []
    assert [c["id"] for c in ok(call("GET", "/customers"))["items"]] == [str(bob.id), str(ada.id)]
    assert_field_problem(call("GET", "/customers?mail=x"), 422, "validation", "mail")


def test_concurrent_customer_for_one_new_email_makes_one_customer(
    app: ErpFlask, tenant: TenantHandle, owner_engine: Engine
) -> None:
    email = f"race-{uuid.uuid4().hex[:6]}@example.com"

    def find(i: int) -> uuid.UUID:
        view = _in_tenant(
            app,
            tenant,
            lambda s: services.customer_for(s, f"N{i}", email.upper() if i % 2 else email),
        )
        return uuid.UUID(str(view.id))

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(find, range(12)))
    assert len(ids) == 1
    rows = owner_sql(
        owner_engine,
        "SELECT count(*) FROM orders.customers WHERE tenant_id = :t AND lower(email) = :e",
        {"t": tenant.id, "e": email},
    )
    assert rows[0][0] == 1


# -- channels ----------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    assert secret.startswith("whsec_")
    return base64.b64decode(secret[len("whsec_") :], validate=True)


def _secrets(app: ErpFlask, tenant: TenantHandle, channel_id: str, now: datetime) -> list[str]:
    def read(s: Any) -> list[str]:
        return services.channel_secrets(services.get_channel(s, uuid.UUID(channel_id)), now)

    return list(_in_tenant(app, tenant, read))


def test_a_generic_channel_shows_its_made_secret_once(
    app: ErpFlask, call: Call, tenant: TenantHandle, owner_engine: Engine
) -> None:
    made = ok(
        call(
            "POST",
            "/channels",
            {"name": "Web shop", "kind": "generic"},
            **{"Idempotency-Key": "ch-1"},
        ),
        201,
    )
    assert set(made) == {
        "id",
        "name",
        "kind",
        "on_shortage",
        "location_id",
        "archived",
        "created_at",
        "signing_secret",
    }
    assert (made["kind"], made["on_shortage"], made["location_id"], made["archived"]) == (
        "generic",
        "reject",
        None,
        False,
    )
    assert len(_key(made["signing_secret"])) == 32
    shown = {k: v for k, v in made.items() if k != "signing_secret"}
    assert ok(call("GET", f"/channels/{made['id']}")) == shown
    assert ok(call("GET", "/channels"))["items"] == [shown]
    # a replay never returns the secret
    replay = call(
        "POST", "/channels", {"name": "Web shop", "kind": "generic"}, **{"Idempotency-Key": "ch-1"}
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert ok(replay, 201) == shown
    # stored encrypted, never as given
    stored = owner_sql(
        owner_engine, "SELECT secret FROM orders.channels WHERE id = :id", {"id": made["id"]}
    )[0][0]
    assert made["signing_secret"] not in stored
    now = datetime.now(UTC)
    assert _secrets(app, tenant, made["id"], now) == [made["signing_secret"]]


def test_rotation_keeps_the_old_generic_secret_for_24_hours(
    app: ErpFlask, call: Call, tenant: TenantHandle
) -> None:
    made = ok(call("POST", "/channels", {"name": "Web", "kind": "generic"}), 201)
    rotated = ok(call("POST", f"/channels/{made['id']}/rotate-secret"))
    assert rotated["id"] == made["id"]
    assert rotated["signing_secret"] != made["signing_secret"]
    assert len(_key(rotated["signing_secret"])) == 32
    now = datetime.now(UTC)
    assert _secrets(app, tenant, made["id"], now) == [
        rotated["signing_secret"],
        made["signing_secret"],
    ]
    later = now + timedelta(hours=24, minutes=1)
    assert _secrets(app, tenant, made["id"], later) == [rotated["signing_secret"]]


def test_a_shopify_channel_takes_the_shops_secret_and_never_shows_it(
    app: ErpFlask, call: Call, tenant: TenantHandle
) -> None:
    r = call("POST", "/channels", {"name": "Shopify", "kind": "shopify"})
    assert_field_problem(r, 422, "validation", "signing_secret")
    made = ok(
        call(
            "POST",
            "/channels",
            {
                "name": "Shopify",
                "kind": "shopify",
                "signing_secret": "shpss_abc",
                "on_shortage": "backorder",
            },
        ),
        201,
    )
    assert "signing_secret" not in made
    assert (made["kind"], made["on_shortage"]) == ("shopify", "backorder")
    assert _secrets(app, tenant, made["id"], datetime.now(UTC)) == ["shpss_abc"]
    assert_problem(call("POST", f"/channels/{made['id']}/rotate-secret"), 409, "conflict")
    patched = ok(call("PATCH", f"/channels/{made['id']}", {"signing_secret": "shpss_new"}))
    assert "signing_secret" not in patched
    assert _secrets(app, tenant, made["id"], datetime.now(UTC)) == ["shpss_new"]


def test_a_generic_channel_refuses_a_given_secret(call: Call) -> None:
    r = call("POST", "/channels", {"name": "W", "kind": "generic", "signing_secret": "whsec_x"})
    assert_field_problem(r, 422, "validation", "signing_secret")
    made = ok(call("POST", "/channels", {"name": "W", "kind": "generic"}), 201)
    r = call("PATCH", f"/channels/{made['id']}", {"signing_secret": "whsec_x"})
    assert_field_problem(r, 422, "validation", "signing_secret")


def test_channel_patch_and_location(call: Call) -> None:
    main = next(
        loc["id"] for loc in ok(call("GET", "/inventory/locations"))["items"] if loc["default"]
    )
    spare = ok(
        call(
            "POST", "/inventory/locations", {"code": "SPARE", "name": "Spare", "kind": "warehouse"}
        ),
        201,
    )
    ok(call("PATCH", f"/inventory/locations/{spare['id']}", {"archived": True}))
    for location, why in ((str(uuid.uuid4()), "Unknown"), (spare["id"], "archived")):
        r = call("POST", "/channels", {"name": "W", "kind": "generic", "location_id": location})
        body = assert_field_problem(r, 422, "validation", "location_id")
        assert why in body["errors"]["location_id"][0]
    made = ok(call("POST", "/channels", {"name": "W", "kind": "generic", "location_id": main}), 201)
    assert made["location_id"] == main
    shown = {k: v for k, v in made.items() if k != "signing_secret"}
    assert ok(call("PATCH", f"/channels/{made['id']}", {})) == shown
    changed = ok(
        call(
            "PATCH",
            f"/channels/{made['id']}",
            {"name": "Shop", "on_shortage": "backorder", "location_id": None, "archived": True},
        )
    )
    assert changed == {
        **shown,
        "name": "Shop",
        "on_shortage": "backorder",
        "location_id": None,
        "archived": True,
    }
    assert ok(call("GET", "/channels?include_archived=false"))["items"] == []
    assert ok(call("GET", "/channels"))["items"] == [changed]
    for body, field in (
        ({"kind": "shopify"}, "kind"),
        ({"on_shortage": "wait"}, "on_shortage"),
        ({"archived": None}, "archived"),
        ({"id": made["id"]}, "id"),
    ):
        assert_field_problem(
            call("PATCH", f"/channels/{made['id']}", body), 422, "validation", field
        )
    for body, field in (
        ({"name": "W", "kind": "amazon"}, "kind"),
        ({"name": "W"}, "kind"),
        ({"kind": "generic"}, "name"),
        ({"name": "W", "kind": "generic", "on_shortage": "x"}, "on_shortage"),
        ({"name": "W", "kind": "generic", "location_id": "x"}, "location_id"),
    ):
        assert_field_problem(call("POST", "/channels", body), 422, "validation", field)


# -- scopes and tenants ----------------------------------------------------------------


def test_orders_scopes_guard_every_route(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    reader = make_tenant(client, ops_headers, scopes=["orders:read"])
    other = make_tenant(client, ops_headers, scopes=["ledger:read"])
    r = client.post(
        f"{API}/tax-rates", json={"code": "A", "name": "A", "rate_ppm": 1}, headers=reader.headers
    )
    assert_problem(r, 403, "forbidden")
    r = client.post(
        f"{API}/channels", json={"name": "W", "kind": "generic"}, headers=reader.headers
    )
    assert_problem(r, 403, "forbidden")
    for path in ("/tax-rates", "/customers", "/channels"):
        assert client.get(f"{API}{path}", headers=reader.headers).status_code == 200
        assert_problem(client.get(f"{API}{path}", headers=other.headers), 403, "forbidden")
    r = client.post(
        "/ops/v1/tenants/" + str(tenant.id) + "/api-keys",
        json={"name": "old", "scopes": ["channels:read"]},
        headers=ops_headers,
    )
    assert_field_problem(r, 422, "validation", "scopes")


def test_another_tenants_rows_are_404(
    client: Any, call: Call, ops_headers: dict[str, str], app: ErpFlask, tenant: TenantHandle
) -> None:
    rate = ok(call("POST", "/tax-rates", {"code": "MINE", "name": "Mine", "rate_ppm": 1}), 201)
    channel = ok(call("POST", "/channels", {"name": "W", "kind": "generic"}), 201)
    cust = _in_tenant(app, tenant, lambda s: services.customer_for(s, "Ada", "ada@example.com"))
    other = make_tenant(client, ops_headers)
    for path in (f"/tax-rates/{rate['id']}", f"/channels/{channel['id']}", f"/customers/{cust.id}"):
        assert_problem(client.get(f"{API}{path}", headers=other.headers), 404, "not-found")
    for path in (f"/tax-rates/{rate['id']}", f"/channels/{channel['id']}"):
        r = client.patch(f"{API}{path}", json={"name": "x"}, headers=other.headers)
        assert_problem(r, 404, "not-found")
    r = client.post(f"{API}/channels/{channel['id']}/rotate-secret", headers=other.headers)
    assert_problem(r, 404, "not-found")
    for path in ("/tax-rates", "/channels", "/customers?email=ada@example.com"):
        assert client.get(f"{API}{path}", headers=other.headers).get_json()["items"] == []
    # the same code in another tenant is no conflict
    r = client.post(
        f"{API}/tax-rates", json={"code": "MINE", "name": "x", "rate_ppm": 2}, headers=other.headers
    )
    assert r.status_code == 201


def test_orm_model_reads_the_channel(app: ErpFlask, call: Call, tenant: TenantHandle) -> None:
    made = ok(call("POST", "/channels", {"name": "W", "kind": "generic"}), 201)
    got = _in_tenant(app, tenant, lambda s: services.get_channel(s, uuid.UUID(made["id"])))
    assert isinstance(got, Channel)
    assert got.previous_secret is None
