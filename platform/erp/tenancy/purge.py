"""Owner-side operations run from the CLI with MIGRATION_DATABASE_URL, never by the API:
purging deleted tenants, creating and revoking operators.

Operators are written only here: erp_ops, the role of every /ops/v1 request, may read
platform.operators but not change it, so an operator token cannot mint, revoke or
revive operators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from graphlib import TopologicalSorter
from typing import Any
from uuid import UUID, uuid4

import psycopg

from erp import credentials

#: Tables that keep naming a tenant after its purge: who did what to it, never its contents.
KEPT_AFTER_PURGE = frozenset({"platform.audit_events"})


def tenant_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Every table with a tenant_id column, in any schema, referencing tables first.

    Read from the catalog rather than a list of schemas, so a table added anywhere is
    purged too; the operators' audit trail alone is kept.
    """
    rows = conn.execute(
        """SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE a.attname = 'tenant_id' AND NOT a.attisdropped
              AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"""
    ).fetchall()
    names = {oid: name for oid, name in rows if name not in KEPT_AFTER_PURGE}
    graph: dict[str, set[str]] = {name: set() for name in names.values()}
    for child, parent in conn.execute(
        "SELECT conrelid, confrelid FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid <> confrelid"
    ):
        if child in names and parent in names:
            graph[names[parent]].add(names[child])  # the parent waits for its children
    return list(TopologicalSorter(graph).static_order())


def _owner(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url)
    conn.execute("SET ROLE erp_owner")
    conn.commit()
    return conn


def purge_due(url: str, only: str | None = None) -> Iterator[tuple[UUID, str, int]]:
    """Purge each tenant in `deleting` whose grace is over, one per transaction.

    With `only` (an id or slug), purge that one tenant now, grace or not, and no other.
    """
    with _owner(url) as conn:
        tables = tenant_tables(conn)
        conn.commit()
        if only:
            due = conn.execute(
                """SELECT id, slug FROM platform.tenants
                    WHERE status = 'deleting' AND (id::text = %(only)s OR slug = %(only)s)""",
                {"only": only},
            ).fetchall()
        else:
            due = conn.execute(
                """SELECT id, slug FROM platform.tenants
                    WHERE status = 'deleting' AND delete_after <= now()"""
            ).fetchall()
        conn.commit()
        for tenant_id, slug in due:
            yield tenant_id, slug, _purge_one(conn, tables, tenant_id, slug, force=bool(only))


def _purge_one(
    conn: psycopg.Connection[Any], tables: list[str], tenant_id: UUID, slug: str, *, force: bool
) -> int:
    with conn.transaction():
        locked = conn.execute(
            """SELECT 1 FROM platform.tenants WHERE id = %s AND status = 'deleting'
                  AND (%s OR delete_after <= now()) FOR UPDATE""",
            [tenant_id, force],
        ).fetchone()
        if locked is None:  # restored (or deleted again, with a new grace) meanwhile
            return 0
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        total = 0
        for table in tables:
            cur = conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])
            total += cur.rowcount
        conn.execute("DELETE FROM platform.tenants WHERE id = %s", [tenant_id])
        conn.execute(
            """INSERT INTO platform.audit_events (actor, action, tenant_id, tenant_slug, details)
               VALUES ('system:purge', 'tenant.purged', %s, %s, %s)""",
            [tenant_id, slug, json.dumps({"rows": total})],
        )
    return total


def create_operator_as_owner(url: str, email: str) -> str:
    public_id, secret = credentials.new_public_id(), credentials.new_secret()
    with _owner(url) as conn, conn.transaction():
        op_id = uuid4()
        conn.execute(
            "INSERT INTO platform.operators (id, email, public_id, token_hash) "
            "VALUES (%s, %s, %s, %s)",
            [op_id, email, public_id, credentials.hash_secret(secret)],
        )
        conn.execute(
            """INSERT INTO platform.audit_events (actor, action, details)
               VALUES ('system:cli', 'operator.created', %s)""",
            [json.dumps({"operator_id": str(op_id), "email": email})],
        )
    return credentials.format_operator_token(public_id, secret)


def revoke_operator_as_owner(url: str, ref: str) -> tuple[UUID, str, bool]:
    """Revoke the operator whose email or id is `ref`: its token fails from the next request.

    Returns (id, email, revoked now); revoking a revoked operator changes nothing and
    writes no second audit event. LookupError if there is no such operator.
    """
    with _owner(url) as conn, conn.transaction():
        row = conn.execute(
            """SELECT id, email, revoked_at FROM platform.operators
                WHERE email = %(ref)s OR id::text = %(ref)s FOR UPDATE""",
            {"ref": ref},
        ).fetchone()
        if row is None:
            raise LookupError(ref)
        op_id, email, revoked_at = row
        if revoked_at is not None:
            return op_id, email, False
        conn.execute("UPDATE platform.operators SET revoked_at = now() WHERE id = %s", [op_id])
        conn.execute(
            """INSERT INTO platform.audit_events (actor, action, details)
               VALUES ('system:cli', 'operator.revoked', %s)""",
            [json.dumps({"operator_id": str(op_id), "email": email})],
        )
    return op_id, email, True
