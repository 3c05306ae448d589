"""The isolation suite's seeds: rows of every tenant table, made the way clients make them.

An attack that compares what tenant A sees or changes with what tenant B holds
proves nothing on an empty table (0 == 0). So the `seeded` fixture runs every seed
below for two tenants and then, table by table from pg_catalog, checks as the
superuser (no RLS) that each tenant holds at least one row: a tenant table no seed
declares, or one a seed declares but leaves empty, fails the whole suite and names
the table. How to add a seed for a new table: tests/rls/README.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from tests.conftest import TenantHandle

HERE = "tests/rls/seeds.py"


@dataclass
class SeedContext:
    """One tenant being seeded; `facts` carries ids from one seed to later ones and tests."""

    client: Any
    tenant: TenantHandle
    facts: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        """One API call as the tenant's all-scopes key; a failure stops the seeding."""
        headers = dict(self.tenant.headers)
        if key is not None:  # state-changing calls go through idempotency like clients' do
            headers["Idempotency-Key"] = f"seed-{key}-{self.tenant.id}"
        r = self.client.open(path, method=method, json=body, headers=headers)
        body = r.get_json(silent=True)
        assert r.status_code in (200, 201, 202, 204), (
            f"seed {method} {path}: {r.status_code} {body}"
        )
        return body


@dataclass(frozen=True)
class Seed:
    name: str
    tables: tuple[str, ...]
    run: Callable[[SeedContext], None]


#: In order: a seed may use what earlier ones made (through `ctx.facts`).
SEEDS: list[Seed] = []


def seed(*tables: str) -> Callable[[Callable[[SeedContext], None]], Callable[[SeedContext], None]]:
    """Register a seed that leaves rows of the tenant in each of `tables`."""

    def register(fn: Callable[[SeedContext], None]) -> Callable[[SeedContext], None]:
        SEEDS.append(Seed(fn.__name__, tables, fn))
        return fn

    return register


# -- the seeds, one per domain ---------------------------------------------------------


@seed("iam.api_keys", "iam.audit_log", "iam.idempotency_records")
def seed_iam(ctx: SeedContext) -> None:
    """Two more keys (one revoked): both key states, their audit rows, a stored response."""
    kept = ctx.call(
        "POST", "/api/v1/api-keys", {"name": "seeded", "scopes": ["api_keys:read"]}, key="key"
    )
    gone = ctx.call(
        "POST", "/api/v1/api-keys", {"name": "revoked", "scopes": ["api_keys:read"]}, key="key2"
    )
    ctx.call("DELETE", f"/api/v1/api-keys/{gone['id']}")
    ctx.facts["iam.key_id"] = uuid.UUID(kept["id"])
    ctx.facts["iam.revoked_key_id"] = uuid.UUID(gone["id"])


@seed("iam.memberships", "iam.sessions", "iam.invitations", "iam.sso_connections")
def seed_auth(ctx: SeedContext) -> None:
    """A member signed in (a session), a pending invitation, the tenant's own SSO
    connection: through the API where one exists, and sign-in's own services for the
    member and session (what /auth/callback does after the provider's answer)."""
    from erp.auth import services as auth
    from erp.extensions import db

    email = f"member-{ctx.tenant.id}@seed.example"
    identity = auth.sign_in_identity("https://seed.example", email, email, "Seed Member")

    def sign_in(s: Any) -> uuid.UUID:
        member = auth.add_member(s, identity, email, "Seed Member", "viewer")
        auth.start_session(s, member, "https://seed.example", None)
        return member.id

    with ctx.client.application.app_context():
        ctx.facts["iam.member_id"] = db.unit_of_work(sign_in, tenant=ctx.tenant.id)
    inv = ctx.call(
        "POST", "/api/v1/invitations", {"email": "new@seed.example", "role": "sales"}, key="inv"
    )
    ctx.facts["iam.invitation_id"] = uuid.UUID(inv["id"])
    ctx.call(
        "PUT",
        "/api/v1/sso-connection",
        {
            "issuer": "https://idp.seed.example",
            "client_id": f"client-{ctx.tenant.id}",
            "client_secret": "seed-secret",
            "allowed_domains": [f"{ctx.tenant.slug}.seed.example"],
        },
    )


@seed(
    "ledger.accounts",
    "ledger.transactions",
    "ledger.entries",
    "ledger.balance_deltas",
    "ledger.balance_hours",
    "ledger.periods",
)
def seed_ledger(ctx: SeedContext) -> None:
    """The template's chart plus a sub-account; a posted, a reversed, a pending and a
    partly posted transaction; January 2024 closed. Balance deltas come from the
    posting triggers and outbox events from posting, as in production."""
    accounts = {
        a["code"]: a["id"] for a in ctx.call("GET", "/api/v1/ledger/accounts?limit=200")["items"]
    }
    petty = ctx.call(
        "POST",
        "/api/v1/ledger/accounts",
        {
            "code": "1001",
            "name": "Petty cash",
            "type": "asset",
            "currency": "USD",
            "parent_id": accounts["1000"],
        },
        key="account",
    )

    def post(name: str, day: str, amount: int, status: str = "posted") -> uuid.UUID:
        body = {
            "description": f"seeded {name}",
            "effective_at": f"{day}T12:00:00Z",
            "status": status,
            "metadata": {"seed": name},
            "entries": [
                {"account_id": petty["id"], "amount": amount, "currency": "USD"},
                {"account_id": accounts["4000"], "amount": -amount, "currency": "USD"},
            ],
        }
        return uuid.UUID(ctx.call("POST", "/api/v1/ledger/transactions", body, key=name)["id"])

    sale = post("sale", "2024-01-10", 12_500)
    refunded = post("refunded", "2024-01-12", 4_000)
    ctx.call("POST", f"/api/v1/ledger/transactions/{refunded}/reverse", {}, key="reverse")
    held = post("held", "2024-02-05", 900, status="pending")
    settled = post("settled", "2024-02-06", 700, status="pending")
    ctx.call("POST", f"/api/v1/ledger/transactions/{settled}/post", {"amount": 500})
    ctx.call("POST", "/api/v1/ledger/periods/2024-01/close")
    ctx.facts.update(
        {
            "ledger.account_id": uuid.UUID(petty["id"]),
            "ledger.posted_id": sale,
            "ledger.pending_id": held,
            "ledger.closed_period": "2024-01",
        }
    )


@seed(
    "webhooks.outbox_events",
    "webhooks.dispatch",
    "webhooks.endpoints",
    "webhooks.messages",
    "webhooks.attempts",
)
def seed_webhooks(ctx: SeedContext) -> None:
    """An endpoint and a disabled one; a test ping delivered once (a failed attempt: no
    receiver listens on the discard port) and one left pending. The ledger's posted
    events above are in the outbox and, no dispatcher having run, still in dispatch."""
    from erp.webhooks import delivery

    hook = ctx.call(
        "POST", "/api/v1/webhooks/endpoints", {"url": "http://127.0.0.1:9/hook"}, key="hook"
    )
    off = ctx.call(
        "POST",
        "/api/v1/webhooks/endpoints",
        {"url": "http://127.0.0.1:9/off", "event_types": ["ledger.transaction.posted"]},
        key="hook-off",
    )
    ctx.call("PATCH", f"/api/v1/webhooks/endpoints/{off['id']}", {"disabled": True})
    ping = ctx.call("POST", f"/api/v1/webhooks/endpoints/{hook['id']}/test", key="ping")
    with ctx.client.application.app_context():
        delivery.deliver(ctx.tenant.id, [uuid.UUID(ping["id"])])
    ctx.call("POST", f"/api/v1/webhooks/endpoints/{hook['id']}/test", key="ping2")
    ctx.facts["webhooks.endpoint_id"] = uuid.UUID(hook["id"])
    ctx.facts["webhooks.message_id"] = uuid.UUID(ping["id"])
    ctx.facts["webhooks.event_id"] = uuid.UUID(ping["event_id"])


@seed(
    "inventory.settings",
    "inventory.items",
    "inventory.locations",
    "inventory.stock_levels",
    "inventory.stock_moves",
    "inventory.level_changes",
    "inventory.reservations",
)
def seed_inventory(ctx: SeedContext) -> None:
    """Settings and the MAIN warehouse from the template; through the API an item
    received (posted to the ledger), transferred to a bin and adjusted, a reservation
    held (no order's: orders reserve in seed_orders), an archived item. Suppliers,
    purchase orders and counts: seed_purchasing."""
    inv = "/api/v1/inventory"
    main = next(
        x["id"] for x in ctx.call("GET", f"{inv}/locations?kind=warehouse")["items"] if x["default"]
    )
    item = ctx.call(
        "POST",
        f"{inv}/items",
        {"sku": "MUG-01", "name": "Mug", "unit": "each", "reorder_point": 5},
        key="item",
    )["id"]
    old = ctx.call("POST", f"{inv}/items", {"sku": "OLD-01", "name": "Old", "unit": "g"})["id"]
    ctx.call("PATCH", f"{inv}/items/{old}", {"archived": True})
    binloc = ctx.call(
        "POST",
        f"{inv}/locations",
        {"code": "MAIN-B1", "name": "Bin 1", "kind": "bin", "parent_id": main},
        key="bin",
    )["id"]

    def move(name: str, **body: Any) -> dict[str, Any]:
        return dict(ctx.call("POST", f"{inv}/moves", {"item_id": item, **body}, key=name))

    rcv = move("receipt", kind="receipt", quantity=40, to_location_id=main, unit_cost=400)
    move("transfer", kind="transfer", quantity=10, from_location_id=main, to_location_id=binloc)
    move("adjust", kind="adjustment", quantity=1, from_location_id=binloc, reason_code="count")
    held = ctx.call(
        "POST",
        f"{inv}/reservations",
        {"item_id": item, "location_id": main, "quantity": 3, "reference": "seed"},
        key="reserve",
    )
    ctx.facts.update(
        {
            "inventory.item_id": uuid.UUID(item),
            "inventory.archived_item_id": uuid.UUID(old),
            "inventory.location_id": uuid.UUID(main),
            "inventory.bin_id": uuid.UUID(binloc),
            "inventory.move_id": uuid.UUID(rcv["id"]),
            "inventory.reservation_id": uuid.UUID(held["id"]),
        }
    )


@seed(
    "inventory.counts",
    "inventory.count_lines",
    "inventory.suppliers",
    "inventory.purchase_orders",
    "inventory.purchase_order_lines",
    "inventory.po_receipts",
    "inventory.po_receipt_lines",
)
def seed_purchasing(ctx: SeedContext) -> None:
    """Through the API, as clients make them: a supplier; purchase orders in draft,
    cancelled and partly received (a receipt: its move, posting and event); a cycle
    count with a difference (an adjustment move and its posting)."""
    inv = "/api/v1/inventory"
    item = ctx.facts["inventory.item_id"]
    supplier = ctx.call(
        "POST", f"{inv}/suppliers", {"name": "Mugs Ltd", "email": "orders@mugs.example"},
        key="supplier",
    )  # fmt: skip
    lines = [{"item_id": str(item), "quantity": 10, "unit_cost": 400}]
    body = {"supplier_id": supplier["id"], "reference": "PO-1", "lines": lines}
    draft = ctx.call("POST", f"{inv}/purchase-orders", body, key="po-draft")
    dropped = ctx.call("POST", f"{inv}/purchase-orders", body, key="po-dropped")
    ctx.call("POST", f"{inv}/purchase-orders/{dropped['id']}/cancel", key="po-cancel")
    sent = ctx.call("POST", f"{inv}/purchase-orders", body, key="po-sent")
    ctx.call("POST", f"{inv}/purchase-orders/{sent['id']}/send", key="po-send")
    line = sent["lines"][0]["id"]
    receipt = ctx.call(
        "POST",
        f"{inv}/purchase-orders/{sent['id']}/receive",
        {"lines": [{"line_id": line, "quantity": 4}]},
        key="po-receive",
    )
    count = ctx.call(
        "POST",
        f"{inv}/counts",
        {"location_id": str(ctx.facts["inventory.location_id"]),
         "lines": [{"item_id": str(item), "counted": 40}], "reason": "seed"},
        key="count",
    )  # fmt: skip
    ctx.facts.update(
        {
            "inventory.supplier_id": uuid.UUID(supplier["id"]),
            "inventory.draft_po_id": uuid.UUID(draft["id"]),
            "inventory.purchase_order_id": uuid.UUID(sent["id"]),  # partially received
            "inventory.po_line_id": uuid.UUID(line),
            "inventory.receipt_id": uuid.UUID(receipt["id"]),
            "inventory.count_id": uuid.UUID(count["id"]),
        }
    )


# the orders domain's seed lives in its own module; importing it here registers it after
# the inventory seeds whose facts it uses
from tests.rls import seeds_orders  # noqa: E402, F401

# -- running them, and the check that they cover the catalog ---------------------------


def seed_tenant(client: Any, tenant: TenantHandle) -> dict[str, Any]:
    """Run every seed for `tenant`; the facts the seeds recorded."""
    ctx = SeedContext(client, tenant)
    for s in SEEDS:
        s.run(ctx)
    return ctx.facts


def unseeded(
    conn: Connection,
    tables: Sequence[str],
    tenants: Sequence[tuple[str, uuid.UUID]],
    seeds: Iterable[Seed] = SEEDS,
) -> list[str]:
    """Why the seeding does not cover `tables` (the catalog's): one line per gap.

    Every table must be declared by a seed, so a new table is a deliberate addition
    here and never passes on rows some other seed happens to leave; and each tenant
    must hold a row in it. `conn` must bypass RLS (the superuser), or each count
    would be only the GUC's tenant's.
    """
    declared = {t: s.name for s in seeds for t in s.tables}
    gaps = [
        f"seed {HERE}: {s} declares {t}, which is not a tenant table in the catalog"
        for t, s in sorted(declared.items())
        if t not in tables
    ]
    for table in tables:
        if table not in declared:
            gaps.append(f"seed {HERE}: no seed declares {table} (see tests/rls/README.md)")
        for label, tenant in tenants:
            n = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()
            if not n:
                gaps.append(f"seed {HERE}: no rows for tenant {label} in {table}")
    return gaps
