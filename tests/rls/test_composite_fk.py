"""A composite foreign key (tenant_id, parent_id) cannot point at another tenant's row.

A foreign-key check runs past RLS, so only the key's shape keeps tenants apart.
Scratch parent/child tables are built exactly as §3 says (policies/tenant_table.sql),
committed for the length of one test so erp_app can attack them over its own
connection, and dropped afterwards. Then every real foreign key erp_app can exercise
is aimed at the seeded rows of another tenant (the catalog lists the keys, so a new
one without an attack fails).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import TENANT_SCHEMAS, sqlstate
from erp.migrate import policy_sql
from tests.rls.audit import audit
from tests.rls.conftest import Seeded, attempt, in_tenant, snapshot
from tests.rls.fk_attacks_orders import ORDERS_DEFERRED_KEYS, ORDERS_FK_ATTACKS

SCHEMA = "inventory"


@dataclass(frozen=True)
class Pair:
    parent: str
    child: str


def _ddl(parent: str, child: str) -> str:
    return f"""
        GRANT USAGE ON SCHEMA {SCHEMA} TO erp_app;
        CREATE TABLE {parent} (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE TABLE {child} (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            parent_id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, parent_id) REFERENCES {parent} (tenant_id, id)
        );
        CREATE INDEX ON {child} (tenant_id, parent_id);
        {policy_sql("tenant_table.sql", table=parent)}
        {policy_sql("tenant_table.sql", table=child)}
        GRANT SELECT, INSERT ON {parent} TO erp_app;
        GRANT SELECT, INSERT, UPDATE (parent_id) ON {child} TO erp_app;
    """


@pytest.fixture
def pair(owner_engine: Engine) -> Iterator[Pair]:
    suffix = uuid.uuid4().hex[:8]
    p = Pair(f"{SCHEMA}.rls_fk_parent_{suffix}", f"{SCHEMA}.rls_fk_child_{suffix}")
    with owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE erp_owner"))
        made_schema = conn.execute(text("SELECT to_regnamespace(:s)"), {"s": SCHEMA}).scalar()
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            cur.execute(_ddl(p.parent, p.child))
    try:
        yield p
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("SET LOCAL ROLE erp_owner"))
            conn.execute(text(f"DROP TABLE {p.child}, {p.parent}"))
            if made_schema is None:
                conn.execute(text(f"DROP SCHEMA {SCHEMA}"))


def _add_parent(engine: Engine, tenant: uuid.UUID, table: str) -> uuid.UUID:
    pid = uuid.uuid4()
    with in_tenant(engine, tenant, commit=True) as conn:
        conn.execute(text(f"INSERT INTO {table} (id) VALUES (:id)"), {"id": pid})
    return pid


def _fk_error(engine: Engine, tenant: uuid.UUID, child: str, parent_id: uuid.UUID) -> DBAPIError:
    with in_tenant(engine, tenant) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"INSERT INTO {child} (id, parent_id) VALUES (:id, :p)"),
            {"id": uuid.uuid4(), "p": parent_id},
        )
    return caught.value


def test_scratch_tables_pass_the_audit(pair: Pair, app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        assert [v for v in audit(conn) if v.subject in (pair.parent, pair.child)] == []


def test_child_cannot_reference_another_tenants_parent(pair: Pair, app_engine: Engine) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    with in_tenant(app_engine, a) as conn:  # positive control: A may reference its own row
        conn.execute(
            text(f"INSERT INTO {pair.child} (id, parent_id) VALUES (:id, :p)"),
            {"id": uuid.uuid4(), "p": parent_of_a},
        )
    foreign = _fk_error(app_engine, b, pair.child, parent_of_a)
    absent = _fk_error(app_engine, b, pair.child, uuid.uuid4())
    assert sqlstate(foreign) == sqlstate(absent) == "23503"
    # No existence oracle: A's row and a random id fail in exactly the same words.
    assert _shape(foreign) == _shape(absent)
    assert str(a) not in str(foreign.orig)


def _shape(exc: DBAPIError) -> tuple[str | None, str | None]:
    diag = exc.orig.diag  # type: ignore[union-attr]
    return diag.message_primary, diag.message_detail


def test_child_cannot_be_repointed_at_another_tenants_parent(
    pair: Pair, app_engine: Engine, owner_engine: Engine
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    parent_of_b = _add_parent(app_engine, b, pair.parent)
    child = uuid.uuid4()
    with in_tenant(app_engine, b, commit=True) as conn:
        conn.execute(
            text(f"INSERT INTO {pair.child} (id, parent_id) VALUES (:id, :p)"),
            {"id": child, "p": parent_of_b},
        )
    with in_tenant(app_engine, b) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"UPDATE {pair.child} SET parent_id = :p WHERE id = :id"),
            {"p": parent_of_a, "id": child},
        )
    assert sqlstate(caught.value) == "23503"
    with owner_engine.connect() as conn:
        assert (
            conn.execute(
                text(f"SELECT parent_id FROM {pair.child} WHERE id = :id"), {"id": child}
            ).scalar_one()
            == parent_of_b
        )


def test_explicit_foreign_tenant_id_on_the_child_is_refused_first(
    pair: Pair, app_engine: Engine
) -> None:
    """Naming A's tenant_id to satisfy the key trips the policy's WITH CHECK instead."""
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    with in_tenant(app_engine, b) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"INSERT INTO {pair.child} (tenant_id, id, parent_id) VALUES (:t, :id, :p)"),
            {"t": a, "id": uuid.uuid4(), "p": parent_of_a},
        )
    assert sqlstate(caught.value) == "42501"


# -- the real tables, with the seeded rows -----------------------------------------------

#: One attack per foreign key erp_app can exercise (it may INSERT into the child), keyed
#: "child(columns other than tenant_id)". Run as tenant B, naming :a, one of A's seeded
#: rows (or a random id, for the control); :b is B's own seeded posted transaction and
#: :b_account B's own account, so only the one reference is foreign.
FK_ATTACKS: dict[str, tuple[str, str]] = {
    "ledger.accounts(parent_id)": (
        "ledger.account_id",
        """INSERT INTO ledger.accounts (id, code, name, type, currency, parent_id)
           VALUES (gen_random_uuid(), 'RLS-FK', 'probe', 'asset', 'USD', :a)""",
    ),
    "ledger.transactions(reverses_id)": (
        "ledger.posted_id",
        """INSERT INTO ledger.transactions (id, description, status, kind, effective_at,
                                            reverses_id)
           VALUES (gen_random_uuid(), 'probe', 'pending', 'reversal', now(), :a)""",
    ),
    "ledger.transactions(adjusts_id)": (
        "ledger.posted_id",
        """INSERT INTO ledger.transactions (id, description, status, kind, effective_at,
                                            adjusts_id)
           VALUES (gen_random_uuid(), 'probe', 'pending', 'adjustment', now(), :a)""",
    ),
    "ledger.entries(transaction_id,effective_at)": (
        "ledger.posted_id",
        """INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency,
                                       effective_at)
           VALUES (gen_random_uuid(), :a, :b_account, 1, 'USD', '2024-01-10T12:00:00Z')""",
    ),
    "ledger.entries(account_id,currency)": (
        "ledger.account_id",
        """INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency,
                                       effective_at)
           SELECT gen_random_uuid(), id, :a, 1, 'USD', effective_at
             FROM ledger.transactions WHERE id = :b""",
    ),
    "ledger.periods(closing_transaction_id)": (
        "ledger.posted_id",
        """INSERT INTO ledger.periods (id, period, closed_by, closing_transaction_id)
           VALUES (gen_random_uuid(), '2023-06-01', 'attacker', :a)""",
    ),
    # ON CONFLICT DO NOTHING: in A's own tenant (the control) the row may already exist;
    # in B's it never does, so the key is checked.
    "webhooks.dispatch(id)": (
        "webhooks.event_id",
        "INSERT INTO webhooks.dispatch (id) VALUES (:a) ON CONFLICT DO NOTHING",
    ),
    "webhooks.messages(endpoint_id)": (
        "webhooks.endpoint_id",
        """INSERT INTO webhooks.messages (id, endpoint_id, event_id, event_type, status,
                                          next_attempt_at)
           SELECT gen_random_uuid(), :a, o.id, o.event_type, 'pending', now()
             FROM webhooks.outbox_events o ORDER BY o.occurred_at LIMIT 1
           ON CONFLICT DO NOTHING""",
    ),
    "webhooks.messages(event_id)": (
        "webhooks.event_id",
        """INSERT INTO webhooks.messages (id, endpoint_id, event_id, event_type, status,
                                          next_attempt_at)
           SELECT gen_random_uuid(), e.id, :a, 'webhook.test', 'pending', now()
             FROM webhooks.endpoints e ORDER BY e.created_at LIMIT 1
           ON CONFLICT DO NOTHING""",
    ),
    "webhooks.attempts(message_id)": (
        "webhooks.message_id",
        """INSERT INTO webhooks.attempts (id, message_id, endpoint_id, status, duration_ms)
           SELECT gen_random_uuid(), :a, e.id, 'failed', 1
             FROM webhooks.endpoints e ORDER BY e.created_at LIMIT 1""",
    ),
    "webhooks.attempts(endpoint_id)": (
        "webhooks.endpoint_id",
        """INSERT INTO webhooks.attempts (id, message_id, endpoint_id, status, duration_ms)
           SELECT gen_random_uuid(), m.id, :a, 'failed', 1
             FROM webhooks.messages m ORDER BY m.created_at LIMIT 1""",
    ),
    "iam.sessions(member_id)": (
        "iam.member_id",
        """INSERT INTO iam.sessions (id, token_hash, member_id, issuer, expires_at)
           VALUES (gen_random_uuid(), encode(sha256(gen_random_uuid()::text::bytea), 'hex'),
                   :a, 'https://attacker.example', now() + interval '1 hour')""",
    ),
    "iam.invitations(accepted_by)": (
        "iam.member_id",
        """INSERT INTO iam.invitations (id, email, role, token_hash, created_by, expires_at,
                                        accepted_at, accepted_by)
           VALUES (gen_random_uuid(), 'x@attacker.example', 'owner',
                   encode(sha256(gen_random_uuid()::text::bytea), 'hex'), 'attacker',
                   now() + interval '1 day', now(), :a)""",
    ),
}

# -- inventory: B's own rows fill every reference but the attacked one -----------------

_MUG = "(SELECT i.id FROM inventory.items i WHERE i.sku = 'MUG-01')"
_OLD = "(SELECT i.id FROM inventory.items i WHERE i.sku = 'OLD-01')"
_MAIN = "(SELECT l.id FROM inventory.locations l WHERE l.is_default)"
_MOVE = "(SELECT m.id FROM inventory.stock_moves m WHERE m.kind = 'receipt' LIMIT 1)"
_COUNT = "(SELECT c.id FROM inventory.counts c LIMIT 1)"
_SUPPLIER = "(SELECT s.id FROM inventory.suppliers s LIMIT 1)"
_PO = "(SELECT p.id FROM inventory.purchase_orders p LIMIT 1)"
_PO_LINE = "(SELECT pl.id FROM inventory.purchase_order_lines pl LIMIT 1)"
_RECEIPT = "(SELECT r.id FROM inventory.po_receipts r LIMIT 1)"


def _insert(table: str, values: dict[str, str], attacked: str, suffix: str = "") -> str:
    row = {**values, attacked: ":a"}
    columns = ", ".join(row)
    return f"INSERT INTO inventory.{table} (id, {columns}) SELECT gen_random_uuid(), " + (
        ", ".join(row.values()) + suffix
    )


_LEVEL = {"item_id": _MUG, "location_id": _MAIN}
_RECEIPT_MOVE = {
    "kind": "'receipt'",
    "item_id": _MUG,
    "quantity": "1",
    "to_location_id": _MAIN,
    "unit_cost": "0",
    "value": "0",
}
_COUNT_LINE = {
    "count_id": _COUNT,
    "line_no": "99",
    "item_id": _OLD,
    "expected": "0",
    "counted": "1",
    "difference": "1",
    "move_id": _MOVE,
}
_PO_ROW = {"supplier_id": _SUPPLIER, "currency": "'USD'", "location_id": _MAIN}
_PO_LINE_ROW = {
    "purchase_order_id": _PO,
    "line_no": "99",
    "item_id": _MUG,
    "quantity": "1",
    "unit_cost": "0",
}
_RECEIPT_LINE = {
    "receipt_id": _RECEIPT,
    "line_no": "99",
    "line_id": _PO_LINE,
    "item_id": _MUG,
    "quantity": "1",
    "location_id": _MAIN,
    "unit_cost": "0",
    "move_id": _MOVE,
}
_NOTHING = " ON CONFLICT DO NOTHING"  # A's own level exists: the control inserts nothing

FK_ATTACKS.update(
    {
        "inventory.locations(parent_id,parent_kind)": (
            "inventory.location_id",
            """INSERT INTO inventory.locations (id, code, name, kind, parent_id, parent_kind)
               VALUES (gen_random_uuid(), 'RLS-FK', 'probe', 'zone', :a, 'warehouse')""",
        ),
        "inventory.stock_levels(item_id)": (
            "inventory.item_id",
            _insert("stock_levels", _LEVEL, "item_id", _NOTHING),
        ),
        "inventory.stock_levels(location_id)": (
            "inventory.location_id",
            _insert("stock_levels", _LEVEL, "location_id", _NOTHING),
        ),
        "inventory.stock_moves(item_id)": (
            "inventory.item_id",
            _insert("stock_moves", _RECEIPT_MOVE, "item_id"),
        ),
        "inventory.stock_moves(from_location_id)": (
            "inventory.location_id",
            _insert(
                "stock_moves",
                {"kind": "'issue'", "item_id": _MUG, "quantity": "1", "value": "0"},
                "from_location_id",
            ),
        ),
        "inventory.stock_moves(to_location_id)": (
            "inventory.location_id",
            _insert("stock_moves", _RECEIPT_MOVE, "to_location_id"),
        ),
        "inventory.stock_moves(transaction_id)": (
            "ledger.posted_id",
            _insert("stock_moves", _RECEIPT_MOVE, "transaction_id"),
        ),
        "inventory.level_changes(item_id,location_id)": (
            "inventory.item_id",
            _insert("level_changes", _LEVEL, "item_id"),
        ),
        "inventory.reservations(item_id,location_id)": (
            "inventory.item_id",
            _insert("reservations", {**_LEVEL, "quantity": "1"}, "item_id"),
        ),
        "inventory.counts(location_id)": (
            "inventory.location_id",
            _insert("counts", {}, "location_id"),
        ),
        "inventory.count_lines(count_id)": (
            "inventory.count_id",
            _insert("count_lines", _COUNT_LINE, "count_id"),
        ),
        "inventory.count_lines(item_id)": (
            "inventory.archived_item_id",
            _insert("count_lines", _COUNT_LINE, "item_id"),
        ),
        "inventory.count_lines(move_id)": (
            "inventory.move_id",
            _insert("count_lines", _COUNT_LINE, "move_id"),
        ),
        "inventory.purchase_orders(supplier_id)": (
            "inventory.supplier_id",
            _insert("purchase_orders", _PO_ROW, "supplier_id"),
        ),
        "inventory.purchase_orders(location_id)": (
            "inventory.location_id",
            _insert("purchase_orders", _PO_ROW, "location_id"),
        ),
        "inventory.purchase_order_lines(purchase_order_id)": (
            "inventory.purchase_order_id",
            _insert("purchase_order_lines", _PO_LINE_ROW, "purchase_order_id"),
        ),
        "inventory.purchase_order_lines(item_id)": (
            "inventory.item_id",
            _insert("purchase_order_lines", _PO_LINE_ROW, "item_id"),
        ),
        "inventory.po_receipts(purchase_order_id)": (
            "inventory.purchase_order_id",
            _insert("po_receipts", {"transaction_id": "NULL"}, "purchase_order_id"),
        ),
        "inventory.po_receipts(transaction_id)": (
            "ledger.posted_id",
            _insert("po_receipts", {"purchase_order_id": _PO}, "transaction_id"),
        ),
        **{
            f"inventory.po_receipt_lines({column})": (
                fact,
                _insert("po_receipt_lines", _RECEIPT_LINE, column),
            )
            for column, fact in (
                ("receipt_id", "inventory.receipt_id"),
                ("line_id", "inventory.po_line_id"),
                ("item_id", "inventory.item_id"),
                ("location_id", "inventory.location_id"),
                ("move_id", "inventory.move_id"),
            )
        },
    }
)


FK_ATTACKS.update(ORDERS_FK_ATTACKS)


def test_every_foreign_key_erp_app_can_exercise_is_attacked(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        keys = conn.execute(
            text(
                """SELECT format('%s(%s)', c.conrelid::regclass,
                          string_agg(a.attname, ',' ORDER BY k.ord))
                     FROM pg_constraint c
                     JOIN pg_namespace n ON n.oid = c.connamespace
                     CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                    WHERE c.contype = 'f' AND n.nspname = ANY(:schemas)
                      AND a.attname <> 'tenant_id'
                      AND has_table_privilege('erp_app', c.conrelid, 'INSERT')
                    GROUP BY c.oid, c.conrelid"""
            ),
            {"schemas": list(TENANT_SCHEMAS)},
        ).scalars()
        assert sorted(keys) == sorted(FK_ATTACKS)


#: Keys checked at commit (a move's or receipt's ledger transaction, posted after it):
#: the attack makes them immediate, so the check runs at the attacking statement.
DEFERRED_KEYS = (
    frozenset({"inventory.stock_moves(transaction_id)", "inventory.po_receipts(transaction_id)"})
    | ORDERS_DEFERRED_KEYS
)


def _immediate(conn: Any, key: str) -> None:
    if key in DEFERRED_KEYS:
        conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))


@pytest.mark.parametrize("key", FK_ATTACKS)
def test_a_seeded_row_of_another_tenant_cannot_be_referenced(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine, key: str
) -> None:
    """A's row is as absent to B's foreign key as a random id: the same 23503, same words."""
    fact, sql = FK_ATTACKS[key]
    a, b = seeded.a, seeded.b
    before = snapshot(owner_engine, a.id)
    own = {"b": seeded.of(b)["ledger.posted_id"], "b_account": seeded.of(b)["ledger.account_id"]}
    errors = []
    for target in (seeded.of(a)[fact], uuid.uuid4()):
        with in_tenant(app_engine, b.id) as conn:
            _immediate(conn, key)
            with pytest.raises(DBAPIError) as caught:
                conn.execute(text(sql), {**own, "a": target})
        errors.append(caught.value)
    foreign, absent = errors
    assert sqlstate(foreign) == sqlstate(absent) == "23503", foreign.orig
    assert _shape(foreign) == _shape(absent)
    assert str(seeded.of(a)[fact]) not in str(foreign.orig)
    assert snapshot(owner_engine, a.id) == before
    # control: in A's own tenant the same reference passes the key (whatever else stops it)
    mine = {"b": seeded.of(a)["ledger.posted_id"], "b_account": seeded.of(a)["ledger.account_id"]}
    with in_tenant(app_engine, a.id) as conn:
        _immediate(conn, key)
        state, _ = attempt(conn, sql, {**mine, "a": seeded.of(a)[fact]})
    assert state in (None, "EL003")  # EL003: entries come only with their transaction
