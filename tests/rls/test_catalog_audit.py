"""The catalog audit passes on the migrated schema, and fails on every kind of bad table.

The negative cases build a table that breaks one rule of DESIGN.md §3 inside an
owner transaction (`SET LOCAL ROLE erp_owner`, as `erp migrate` does), run the
same audit in that transaction, assert it names the table and the rule, and
roll everything back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, Engine, text

from erp.db import TENANT_SCHEMAS
from erp.migrate import policy_sql
from tests.rls.audit import audit, normalise, report
from tests.rls.conftest import tenant_tables

SCHEMA = "inventory"  # a tenant schema no migration creates yet; made in the transaction
T = f"{SCHEMA}.rls_scratch_t"
P = f"{SCHEMA}.rls_scratch_p"
ROLE_RESET = "RESET ROLE;"  # superuser again, for what erp_owner may not do


def good(table: str, extra_columns: str = "") -> str:
    """A tenant table exactly as §3 and policies/tenant_table.sql want it."""
    return f"""
        CREATE TABLE {table} (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            code text NOT NULL,
            {extra_columns}
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, code)
        );
        {policy_sql("tenant_table.sql", table=table)}
        GRANT SELECT, INSERT ON {table} TO erp_app;
    """


def rls(table: str, ddl: str) -> str:
    return f"{ddl}; {policy_sql('tenant_table.sql', table=table)}"


REPOLICY = f"DROP POLICY tenant_isolation ON {T};"
COMPOSITE_FK = good(
    T,
    f"parent_id uuid, FOREIGN KEY (tenant_id, parent_id) REFERENCES {P} (tenant_id, id),",
)


@contextmanager
def owner_transaction(owner_engine: Engine) -> Iterator[Connection]:
    """An owner transaction that is always rolled back; DDL runs as erp_owner."""
    with owner_engine.connect() as conn:
        try:
            conn.execute(text("SET LOCAL ROLE erp_owner"))
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            yield conn
        finally:
            conn.rollback()


def run(conn: Connection, sql: str) -> None:
    """Several statements at once (no bind parameters, so psycopg sends them as is)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cur:
        cur.execute(sql)


def audit_after(owner_engine: Engine, sql: str) -> set[tuple[str, str]]:
    with owner_transaction(owner_engine) as conn:
        run(conn, sql)
        conn.execute(text("RESET ROLE"))
        return {(v.subject, v.rule) for v in audit(conn)}


# -- the live schema ---------------------------------------------------------------


def test_migrated_schema_passes_the_audit(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        violations = audit(conn)
    assert not violations, "DESIGN.md §3 is broken:\n" + report(violations)


def test_audit_sees_every_tenant_table(app_engine: Engine) -> None:
    """The audit is data-driven: it walks the catalog, so a new table cannot slip past."""
    with app_engine.connect() as conn:
        tables = tenant_tables(conn)
    assert {"iam.api_keys", "iam.audit_log", "iam.idempotency_records"} <= set(tables)
    assert "webhooks.outbox_events" in tables
    assert {t.split(".")[0] for t in tables} <= set(TENANT_SCHEMAS)


def test_expression_normalisation() -> None:
    assert normalise("((tenant_id = app.current_tenant_id()))") == (
        "tenant_id=app.current_tenant_id()"
    )
    assert normalise("(a) = (b)") == "(a)=(b)"
    assert normalise(None) is None


# -- good shapes raise nothing -----------------------------------------------------

GOOD_SHAPES = {
    "plain tenant table": good(T),
    "composite foreign key": good(P) + COMPOSITE_FK,
    "security_invoker view": good(T)
    + f"CREATE VIEW {T}_v WITH (security_invoker = true) AS SELECT * FROM {T};",
    "append-only table": good(T) + policy_sql("append_only.sql", table=T),
    "partitioned table": rls(
        T,
        f"""CREATE TABLE {T} (
                tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(), id uuid NOT NULL,
                PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)""",
    )
    + rls(
        f"{T}_p0", f"CREATE TABLE {T}_p0 PARTITION OF {T} FOR VALUES WITH (MODULUS 1, REMAINDER 0)"
    ),
}


@pytest.mark.parametrize("sql", GOOD_SHAPES.values(), ids=GOOD_SHAPES.keys())
def test_audit_accepts_tables_that_follow_the_rules(owner_engine: Engine, sql: str) -> None:
    assert audit_after(owner_engine, sql) - audit_after(owner_engine, "") == set()


# -- every rule can fail -----------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    sql: str
    expect: frozenset[tuple[str, str]]


def breach(sql: str, *expect: tuple[str, str]) -> Breach:
    return Breach(sql, frozenset(expect))


BREACHES = {
    # the tenant_id column
    "no tenant_id": breach(
        f"""CREATE TABLE {T} (owner_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (owner_id, id));
            ALTER TABLE {T} ENABLE ROW LEVEL SECURITY; ALTER TABLE {T} FORCE ROW LEVEL SECURITY;
            CREATE POLICY tenant_isolation ON {T} USING (owner_id = app.current_tenant_id())
                WITH CHECK (owner_id = app.current_tenant_id());""",
        (T, "tenant_id.missing"),
        (T, "primary_key"),
        (T, "policy.using"),
    ),
    "nullable tenant_id, key on id": breach(
        rls(
            T,
            f"""CREATE TABLE {T} (tenant_id uuid DEFAULT app.current_tenant_id(),
                    id uuid PRIMARY KEY)""",
        ),
        (T, "tenant_id.not_null"),
        (T, "primary_key"),
        (T, "unique.tenant_id"),
        (T, "index.leading_tenant_id"),
    ),
    "text tenant_id": breach(
        f"""CREATE TABLE {T} (tenant_id text NOT NULL DEFAULT app.current_tenant_id()::text,
                id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
            ALTER TABLE {T} ENABLE ROW LEVEL SECURITY; ALTER TABLE {T} FORCE ROW LEVEL SECURITY;
            CREATE POLICY tenant_isolation ON {T} USING (tenant_id = app.current_tenant_id()::text)
                WITH CHECK (tenant_id = app.current_tenant_id()::text);""",
        (T, "tenant_id.type"),
        (T, "tenant_id.default"),
    ),
    "no default": breach(
        good(T) + f"ALTER TABLE {T} ALTER COLUMN tenant_id DROP DEFAULT;",
        (T, "tenant_id.default"),
    ),
    "default read from the GUC directly": breach(
        good(T)
        + f"""ALTER TABLE {T} ALTER COLUMN tenant_id
                SET DEFAULT current_setting('app.tenant_id')::uuid;""",
        (T, "tenant_id.default"),
    ),
    # keys and indexes
    "primary key (id, tenant_id)": breach(
        rls(
            T,
            f"""CREATE TABLE {T} (tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
                    id uuid NOT NULL, PRIMARY KEY (id, tenant_id))""",
        ),
        (T, "primary_key"),
        (T, "index.leading_tenant_id"),
    ),
    "primary key with a third column": breach(
        rls(
            T,
            f"""CREATE TABLE {T} (tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
                    id uuid NOT NULL, n int NOT NULL, PRIMARY KEY (tenant_id, id, n))""",
        ),
        (T, "primary_key"),
    ),
    "unique without tenant_id": breach(
        good(T) + f"ALTER TABLE {T} ADD UNIQUE (code);", (T, "unique.tenant_id")
    ),
    "unique expression index": breach(
        good(T) + f"CREATE UNIQUE INDEX ON {T} (lower(code));", (T, "unique.tenant_id")
    ),
    "unique index with tenant_id only INCLUDEd": breach(
        good(T) + f"CREATE UNIQUE INDEX ON {T} (code) INCLUDE (tenant_id);",
        (T, "unique.tenant_id"),
    ),
    "exclusion constraint without tenant_id": breach(
        good(T) + f"ALTER TABLE {T} ADD EXCLUDE USING btree (code WITH =);",
        (T, "unique.tenant_id"),
    ),
    # foreign keys
    "single-column foreign key": breach(
        good(P)
        + f"ALTER TABLE {P} ADD UNIQUE (id);"
        + good(T, f"parent_id uuid REFERENCES {P} (id),"),
        (T, "foreign_key.tenant_id"),
        (P, "unique.tenant_id"),
    ),
    "foreign key pairing tenant_id with id": breach(
        good(P)
        + f"ALTER TABLE {P} ADD UNIQUE (id, tenant_id);"
        + good(
            T, f"parent_id uuid, FOREIGN KEY (tenant_id, parent_id) REFERENCES {P} (id, tenant_id),"
        ),
        (T, "foreign_key.tenant_id"),
    ),
    "foreign key to a global table": breach(
        good(T) + f"ALTER TABLE {T} ADD FOREIGN KEY (tenant_id) REFERENCES platform.tenants (id);",
        (T, "foreign_key.target"),
    ),
    "global table referencing tenant rows": breach(
        good(T)
        + f"""CREATE TABLE platform.rls_scratch_g (tenant_id uuid, id uuid,
                  FOREIGN KEY (tenant_id, id) REFERENCES {T} (tenant_id, id));""",
        ("platform.rls_scratch_g", "foreign_key.into_tenant"),
    ),
    # row-level security and the policy
    "RLS not enabled": breach(
        good(T) + f"ALTER TABLE {T} DISABLE ROW LEVEL SECURITY;", (T, "rls.enabled")
    ),
    "RLS not forced": breach(
        good(T) + f"ALTER TABLE {T} NO FORCE ROW LEVEL SECURITY;", (T, "rls.forced")
    ),
    "no policy": breach(good(T) + REPOLICY, (T, "policy.count")),
    "a second policy": breach(
        good(T) + f"CREATE POLICY peek ON {T} FOR SELECT USING (true);",
        (T, "policy.count"),
        (T, "policy.command"),
        (T, "policy.using"),
    ),
    "policy for SELECT only": breach(
        good(T)
        + REPOLICY
        + f"""CREATE POLICY tenant_isolation ON {T} FOR SELECT
                USING (tenant_id = app.current_tenant_id());""",
        (T, "policy.command"),
        (T, "policy.with_check"),
    ),
    "policy without WITH CHECK": breach(
        good(T)
        + REPOLICY
        + f"CREATE POLICY tenant_isolation ON {T} USING (tenant_id = app.current_tenant_id());",
        (T, "policy.with_check"),
    ),
    "policy reading the GUC directly": breach(
        good(T)
        + REPOLICY
        + f"""CREATE POLICY tenant_isolation ON {T}
                USING (tenant_id = current_setting('app.tenant_id')::uuid)
                WITH CHECK (tenant_id = current_setting('app.tenant_id')::uuid);""",
        (T, "policy.using"),
        (T, "policy.with_check"),
    ),
    "policy with a subquery": breach(
        good(T)
        + REPOLICY
        + f"""CREATE POLICY tenant_isolation ON {T}
                USING (tenant_id IN (SELECT app.current_tenant_id()))
                WITH CHECK (tenant_id = app.current_tenant_id());""",
        (T, "policy.subquery"),
        (T, "policy.using"),
    ),
    "restrictive policy": breach(
        good(T)
        + REPOLICY
        + f"""CREATE POLICY tenant_isolation ON {T} AS RESTRICTIVE
                USING (tenant_id = app.current_tenant_id())
                WITH CHECK (tenant_id = app.current_tenant_id());""",
        (T, "policy.permissive"),
    ),
    "policy for one role only": breach(
        good(T)
        + REPOLICY
        + f"""CREATE POLICY tenant_isolation ON {T} TO erp_app
                USING (tenant_id = app.current_tenant_id())
                WITH CHECK (tenant_id = app.current_tenant_id());""",
        (T, "policy.roles"),
    ),
    "partition without its own policy": breach(
        rls(
            T,
            f"""CREATE TABLE {T} (
                    tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(), id uuid NOT NULL,
                    PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)""",
        )
        + f"CREATE TABLE {T}_p0 PARTITION OF {T} FOR VALUES WITH (MODULUS 1, REMAINDER 0);",
        (f"{T}_p0", "rls.enabled"),
        (f"{T}_p0", "rls.forced"),
        (f"{T}_p0", "policy.count"),
    ),
    # other relations and schemas
    "view without security_invoker": breach(
        good(T) + f"CREATE VIEW {T}_v AS SELECT * FROM {T};", (f"{T}_v", "view.security_invoker")
    ),
    "materialized view in a tenant schema": breach(
        good(T) + f"CREATE MATERIALIZED VIEW {T}_mv AS SELECT * FROM {T};", (f"{T}_mv", "relkind")
    ),
    "table in an unexpected schema": breach(
        "CREATE SCHEMA rls_scratch; CREATE TABLE rls_scratch.t (id int);",
        ("rls_scratch", "schema.unexpected"),
    ),
    "table in the functions schema": breach(
        "CREATE TABLE app.rls_scratch (id int);", ("app", "schema.unexpected")
    ),
    "table in public": breach(
        "CREATE TABLE public.rls_scratch (id int);", ("public.rls_scratch", "schema.public")
    ),
    # ownership
    "table owned by erp_ops": breach(
        good(T) + ROLE_RESET + f"ALTER TABLE {T} OWNER TO erp_ops;",
        (T, "owner.table"),
        ("erp_ops", "role.owns"),
    ),
    "table owned by erp_app": breach(
        good(T) + ROLE_RESET + f"ALTER TABLE {T} OWNER TO erp_app;",
        (T, "owner.table"),
        ("erp_app", "role.owns"),
    ),
    "schema owned by the superuser": breach(
        ROLE_RESET + "CREATE SCHEMA rls_scratch_owned;", ("rls_scratch_owned", "owner.schema")
    ),
    "function owned by the superuser": breach(
        ROLE_RESET + "CREATE FUNCTION app.rls_scratch() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        ("app.rls_scratch()", "owner.function"),
    ),
    # SECURITY DEFINER
    "a definer not on the allow-list": breach(
        """CREATE FUNCTION app.rls_scratch() RETURNS int LANGUAGE sql SECURITY DEFINER
               SET search_path = pg_catalog, pg_temp AS 'SELECT 1';""",
        ("app.rls_scratch()", "definer.allow_list"),
    ),
    "definer without a pinned search_path": breach(
        ROLE_RESET + "ALTER FUNCTION app.lookup_api_key(text, text) RESET search_path;",
        ("app.lookup_api_key(text,text)", "definer.search_path"),
    ),
    "definer search_path without pg_temp last": breach(
        ROLE_RESET + "ALTER FUNCTION app.lookup_api_key(text, text) SET search_path = pg_catalog;",
        ("app.lookup_api_key(text,text)", "definer.search_path"),
    ),
    "definer executable by PUBLIC": breach(
        ROLE_RESET + "GRANT EXECUTE ON FUNCTION app.lookup_api_key(text, text) TO PUBLIC;",
        ("app.lookup_api_key(text,text)", "definer.execute"),
    ),
    # roles and grants
    "erp_app a member of erp_owner": breach(
        ROLE_RESET + "GRANT erp_owner TO erp_app;", ("erp_app", "role.membership")
    ),
    "erp_app a member of erp_auth": breach(
        ROLE_RESET + "GRANT erp_auth TO erp_app;", ("erp_app", "role.membership")
    ),
    "TRUNCATE for erp_app": breach(
        good(T) + f"GRANT TRUNCATE ON {T} TO erp_app;", (T, "grant.forbidden")
    ),
    "REFERENCES for erp_app": breach(
        good(T) + f"GRANT REFERENCES ON {T} TO erp_app;", (T, "grant.forbidden")
    ),
    "TRIGGER for erp_ops, which erp_app may become": breach(
        good(T) + f"GRANT TRIGGER ON {T} TO erp_ops;", (T, "grant.forbidden")
    ),
    "TRUNCATE on a platform table": breach(
        "GRANT TRUNCATE ON platform.tenants TO erp_ops;", ("platform.tenants", "grant.forbidden")
    ),
    "erp_app reading a platform table": breach(
        "GRANT SELECT ON platform.tenants TO erp_app;", ("platform.tenants", "grant.platform")
    ),
    "erp_app reading a platform column": breach(
        "GRANT SELECT (slug) ON platform.tenants TO erp_app;",
        ("platform.tenants", "grant.platform"),
    ),
    "CREATE on a schema": breach(
        f"GRANT CREATE ON SCHEMA {SCHEMA} TO erp_app;", (SCHEMA, "grant.create")
    ),
    "CREATE on public for erp_ops": breach(
        ROLE_RESET + "GRANT CREATE ON SCHEMA public TO erp_ops;", ("public", "grant.create")
    ),
    "CREATE on the database": breach(
        ROLE_RESET
        + "DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO erp_app', "
        + "current_database()); END $$;",
        ("database", "grant.create"),
    ),
    "a grant to PUBLIC": breach(good(T) + f"GRANT SELECT ON {T} TO PUBLIC;", (T, "grant.public")),
    # append-only tables
    "audit log without its TRUNCATE guard": breach(
        "DROP TRIGGER refuse_truncate ON iam.audit_log;", ("iam.audit_log", "trigger.truncate")
    ),
    "operator audit without its TRUNCATE guard": breach(
        "DROP TRIGGER refuse_truncate ON platform.audit_events;",
        ("platform.audit_events", "trigger.truncate"),
    ),
    "outbox with its UPDATE/DELETE guard disabled": breach(
        "ALTER TABLE webhooks.outbox_events DISABLE TRIGGER refuse_update_delete;",
        ("webhooks.outbox_events", "trigger.update_delete"),
    ),
    "erp_app allowed to rewrite the audit log": breach(
        "GRANT UPDATE (details) ON iam.audit_log TO erp_app;",
        ("iam.audit_log", "grant.append_only"),
    ),
    "new guarded table without a TRUNCATE guard": breach(
        good(T)
        + f"""CREATE TRIGGER refuse_update_delete BEFORE UPDATE OR DELETE ON {T}
                FOR EACH ROW EXECUTE FUNCTION app.refuse_change('owner_may_delete');""",
        (T, "trigger.truncate"),
    ),
}


@pytest.mark.parametrize("case", BREACHES.values(), ids=BREACHES.keys())
def test_audit_names_the_table_and_the_rule_broken(owner_engine: Engine, case: Breach) -> None:
    found = audit_after(owner_engine, case.sql)
    missing = case.expect - found
    assert not missing, f"audit did not report {sorted(missing)}; it reported {sorted(found)}"


def test_breaches_are_rolled_back(app_engine: Engine, owner_engine: Engine) -> None:
    """The proofs above leave nothing behind: the live schema still passes."""
    audit_after(owner_engine, good(T) + f"GRANT TRUNCATE ON {T} TO erp_app;")
    with app_engine.connect() as conn:
        assert audit(conn) == []
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": T}).scalar_one()
    assert exists is None
