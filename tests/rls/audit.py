"""The catalog audit: DESIGN.md §3 checked against pg_catalog, table by table.

`audit(conn)` reads the catalog of the database `conn` is connected to and
returns every broken rule as a `Violation` naming the object and the rule. It
is data-driven: every table in a tenant schema (`erp.db.TENANT_SCHEMAS`) is
checked, whichever migration made it, and any other schema that holds tables
is a violation unless it is `platform` (or `public` holding only
`alembic_version`). It only reads; it runs inside the caller's transaction, so
a test can create a bad table in a transaction, audit, and roll back.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from erp.db import TENANT_SCHEMAS
from erp.registry import registry

GLOBAL_SCHEMAS = frozenset({"platform"})
PUBLIC_TABLES = frozenset({"public.alembic_version"})
RUNTIME_LOGIN = "erp_app"
OWNER = "erp_owner"
AUTH_OWNER = "erp_auth"
#: SECURITY DEFINER functions, identity -> owner, as each domain registers them
#: (`Registry.catalog`). Reviewed one by one, each with a test in test_definer.py: a new
#: definer fails the audit until its domain lists it.
DEFINERS: dict[str, str] = dict(registry().definers)
#: Tables whose history is never rewritten: no UPDATE/DELETE for erp_app, guard triggers.
#: Any other table with an app.refuse_change row guard must also refuse TRUNCATE.
APPEND_ONLY: frozenset[str] = frozenset(registry().append_only)
FORBIDDEN_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")
ALL_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", *FORBIDDEN_PRIVILEGES)
TENANT_EXPR = "tenant_id=app.current_tenant_id()"
DEFAULT_EXPR = "app.current_tenant_id()"

# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h)
TG_ROW, TG_BEFORE, TG_DELETE, TG_UPDATE, TG_TRUNCATE = 1, 2, 8, 16, 32

_SYSTEM = "(n.nspname LIKE 'pg\\_%' OR n.nspname = 'information_schema')"


@dataclass(frozen=True, order=True)
class Violation:
    subject: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: [{self.rule}] {self.detail}"


@dataclass
class Table:
    oid: int
    name: str
    schema: str
    kind: str
    owner: str
    rls: bool
    force_rls: bool
    options: list[str]
    tenant_col: dict[str, Any] | None = None
    id_attnum: int | None = None
    indexes: list[dict[str, Any]] = field(default_factory=list)
    constraints: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)


def normalise(expr: str | None) -> str | None:
    """pg_get_expr output without whitespace, case or redundant outer parentheses."""
    if expr is None:
        return None
    out = re.sub(r"\s+", "", expr).lower()
    while out.startswith("(") and out.endswith(")") and _balanced(out[1:-1]):
        out = out[1:-1]
    return out


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def report(violations: Iterable[Violation]) -> str:
    return "\n".join(str(v) for v in sorted(violations))


def audit(conn: Connection) -> list[Violation]:
    """Every way the connected database breaks DESIGN.md §3 (empty: it complies)."""
    saved = conn.execute(text("SELECT current_setting('search_path')")).scalar_one()
    # Only pg_catalog on the path: pg_get_expr then schema-qualifies every function.
    conn.execute(text("SELECT set_config('search_path', 'pg_catalog', true)"))
    tables = _load_tables(conn)
    found: list[Violation] = []
    found += _check_schemas(tables)
    for t in tables.values():
        if t.schema in TENANT_SCHEMAS:
            found += _check_tenant_table(t, tables)
    found += _check_foreign_keys_into_tenant_tables(tables)
    found += _check_views(tables)
    found += _check_policies_without_subqueries(conn)
    found += _check_ownership(conn, tables)
    found += _check_definers(conn)
    found += _check_roles(conn)
    found += _check_grants(conn)
    found += _check_append_only(conn, tables)
    conn.execute(text("SELECT set_config('search_path', :p, true)"), {"p": saved})
    return sorted(set(found))


# -- loading -----------------------------------------------------------------------


def _rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    return list(conn.execute(text(sql), params))


def _load_tables(conn: Connection) -> dict[int, Table]:
    tables = {
        r.oid: Table(
            r.oid,
            f"{r.nspname}.{r.relname}",
            r.nspname,
            r.relkind,
            r.owner,
            r.relrowsecurity,
            r.relforcerowsecurity,
            list(r.reloptions or []),
        )
        for r in _rows(
            conn,
            f"""SELECT c.oid::int AS oid, n.nspname, c.relname, c.relkind,
                       pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity,
                       c.relforcerowsecurity, c.reloptions
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT {_SYSTEM}""",
        )
    }
    for r in _rows(
        conn,
        """SELECT a.attrelid::int AS rel, a.attname, a.attnum,
                  format_type(a.atttypid, a.atttypmod) AS type,
                  a.attnotnull, a.attgenerated, a.attidentity,
                  pg_get_expr(d.adbin, d.adrelid) AS default_expr
             FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attname IN ('tenant_id', 'id') AND a.attnum > 0 AND NOT a.attisdropped""",
    ):
        if r.rel not in tables:
            continue
        if r.attname == "id":
            tables[r.rel].id_attnum = r.attnum
        else:
            tables[r.rel].tenant_col = r._asdict()
    for r in _rows(
        conn,
        """SELECT i.indrelid::int AS rel, i.indexrelid::regclass::text AS name, i.indisunique,
                  i.indisprimary, i.indnkeyatts,
                  string_to_array(i.indkey::text, ' ')::int[] AS attnums
             FROM pg_index i""",
    ):
        if r.rel in tables:
            tables[r.rel].indexes.append({**r._asdict(), "keys": list(r.attnums[: r.indnkeyatts])})
    for r in _rows(
        conn,
        """SELECT c.conrelid::int AS rel, c.conname, c.contype, c.conkey, c.confkey,
                  c.confrelid::int AS target, c.conindid::int AS index_oid
             FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f', 'x')""",
    ):
        if r.rel in tables:
            tables[r.rel].constraints.append(r._asdict())
    for r in _rows(
        conn,
        """SELECT p.polrelid::int AS rel, p.polname, p.polcmd, p.polpermissive,
                  p.polroles::int[] AS roles,
                  pg_get_expr(p.polqual, p.polrelid) AS using_expr,
                  pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
             FROM pg_policy p""",
    ):
        if r.rel in tables:
            tables[r.rel].policies.append(r._asdict())
    for r in _rows(
        conn,
        """SELECT t.tgrelid::int AS rel, t.tgname, t.tgtype::int AS tgtype, t.tgenabled,
                  t.tgfoid::regprocedure::text AS function
             FROM pg_trigger t WHERE NOT t.tgisinternal""",
    ):
        if r.rel in tables:
            tables[r.rel].triggers.append(r._asdict())
    return tables


# -- schemas -----------------------------------------------------------------------


def _check_schemas(tables: dict[int, Table]) -> list[Violation]:
    out: list[Violation] = []
    allowed = GLOBAL_SCHEMAS | set(TENANT_SCHEMAS)
    kinds = ("r", "p", "v", "m", "f")
    by_schema: dict[str, list[str]] = defaultdict(list)
    for t in tables.values():
        if t.kind in kinds:
            by_schema[t.schema].append(t.name)
    for schema, names in sorted(by_schema.items()):
        if schema == "public":
            for name in sorted(set(names) - PUBLIC_TABLES):
                out.append(
                    Violation(name, "schema.public", "only alembic_version may live in public")
                )
        elif schema not in allowed:
            out.append(
                Violation(
                    schema,
                    "schema.unexpected",
                    f"holds {', '.join(sorted(names))}; tables belong in a tenant schema "
                    f"({', '.join(TENANT_SCHEMAS)}) or platform",
                )
            )
    return out


# -- tenant tables -----------------------------------------------------------------


def _check_tenant_table(t: Table, tables: dict[int, Table]) -> list[Violation]:
    if t.kind in ("v", "S"):
        return []  # views are audited as views; sequences hold no rows of a tenant
    if t.kind not in ("r", "p"):
        kind = {"m": "materialized view", "f": "foreign table"}.get(t.kind, t.kind)
        return [Violation(t.name, "relkind", f"a {kind} cannot carry row-level security")]
    v = _Collector(t.name)
    col = t.tenant_col
    if col is None:
        v.add("tenant_id.missing", "no tenant_id column")
        tenant_attnum = None
    else:
        tenant_attnum = col["attnum"]
        if col["type"] != "uuid":
            v.add("tenant_id.type", f"tenant_id is {col['type']}, not uuid")
        if not col["attnotnull"]:
            v.add("tenant_id.not_null", "tenant_id is nullable")
        if col["attgenerated"] or col["attidentity"]:
            v.add("tenant_id.default", "tenant_id is generated or an identity")
        elif normalise(col["default_expr"]) != DEFAULT_EXPR:
            v.add(
                "tenant_id.default",
                f"default is {col['default_expr']!r}, not app.current_tenant_id()",
            )
    _check_keys(t, tenant_attnum, v, tables)
    if not t.rls:
        v.add("rls.enabled", "ROW LEVEL SECURITY is not enabled")
    if not t.force_rls:
        v.add("rls.forced", "ROW LEVEL SECURITY is not forced (the owner bypasses it)")
    _check_policy(t, v)
    return v.found


def _check_keys(
    t: Table, tenant_attnum: int | None, v: _Collector, tables: dict[int, Table]
) -> None:
    id_attnum = t.id_attnum
    pk = [i for i in t.indexes if i["indisprimary"]]
    expected = [tenant_attnum, id_attnum]
    if not pk:
        v.add("primary_key", "no primary key; it must be (tenant_id, id)")
    elif None in expected or pk[0]["keys"] != expected:
        v.add("primary_key", f"primary key {pk[0]['name']} is not exactly (tenant_id, id)")
    for idx in t.indexes:
        if idx["indisunique"] and tenant_attnum not in idx["keys"]:
            v.add("unique.tenant_id", f"unique index {idx['name']} does not include tenant_id")
    if not any(i["keys"][:1] == [tenant_attnum] for i in t.indexes if tenant_attnum):
        v.add("index.leading_tenant_id", "no index leads with tenant_id")
    for con in t.constraints:
        if con["contype"] == "x" and tenant_attnum not in (con["conkey"] or []):
            v.add("unique.tenant_id", f"exclusion constraint {con['conname']} lacks tenant_id")
        if con["contype"] == "f":
            _check_foreign_key(t, con, tenant_attnum, v, tables)


def _check_foreign_key(
    t: Table,
    con: dict[str, Any],
    tenant_attnum: int | None,
    v: _Collector,
    tables: dict[int, Table],
) -> None:
    target = tables.get(con["target"])
    target_name = target.name if target else f"oid {con['target']}"
    if target is None or target.schema not in TENANT_SCHEMAS:
        v.add(
            "foreign_key.target",
            f"{con['conname']} references {target_name}, which is not a tenant table",
        )
        return
    target_tenant = target.tenant_col["attnum"] if target.tenant_col else None
    pairs = list(zip(con["conkey"], con["confkey"], strict=True))
    if tenant_attnum is None or (tenant_attnum, target_tenant) not in pairs:
        v.add(
            "foreign_key.tenant_id",
            f"{con['conname']} does not pair tenant_id with {target_name}.tenant_id",
        )


def _check_policy(t: Table, v: _Collector) -> None:
    if len(t.policies) != 1:
        names = ", ".join(sorted(p["polname"] for p in t.policies)) or "none"
        v.add("policy.count", f"exactly one policy expected, found {names}")
    for p in t.policies:
        name = p["polname"]
        if p["polcmd"] != "*":
            v.add("policy.command", f"policy {name} is not FOR ALL")
        if not p["polpermissive"]:
            v.add("policy.permissive", f"policy {name} is RESTRICTIVE")
        if list(p["roles"]) != [0]:
            v.add("policy.roles", f"policy {name} is not TO PUBLIC")
        if normalise(p["using_expr"]) != TENANT_EXPR:
            v.add("policy.using", f"policy {name} USING is {p['using_expr']!r}")
        if normalise(p["check_expr"]) != TENANT_EXPR:
            v.add("policy.with_check", f"policy {name} WITH CHECK is {p['check_expr']!r}")


class _Collector:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.found: list[Violation] = []

    def add(self, rule: str, detail: str) -> None:
        self.found.append(Violation(self.subject, rule, detail))


# -- other relations -----------------------------------------------------------------


def _check_foreign_keys_into_tenant_tables(tables: dict[int, Table]) -> list[Violation]:
    """A global table pointing into tenant data would check it past RLS (§3)."""
    out = []
    for t in tables.values():
        if t.schema in TENANT_SCHEMAS:
            continue
        for con in t.constraints:
            target = tables.get(con["target"]) if con["contype"] == "f" else None
            if target is not None and target.schema in TENANT_SCHEMAS:
                out.append(
                    Violation(
                        t.name,
                        "foreign_key.into_tenant",
                        f"{con['conname']} references tenant table {target.name}",
                    )
                )
    return out


_TRUE = {"true", "on", "1", "yes"}


def _check_views(tables: dict[int, Table]) -> list[Violation]:
    out = []
    for t in tables.values():
        if t.kind != "v":
            continue
        opts = dict(o.split("=", 1) for o in t.options if "=" in o)
        if opts.get("security_invoker", "false").lower() not in _TRUE:
            out.append(Violation(t.name, "view.security_invoker", "view is not security_invoker"))
    return out


def _check_policies_without_subqueries(conn: Connection) -> list[Violation]:
    """No subqueries in any policy (Citus-ready, §3); read from the parsed node tree."""
    return [
        Violation(r.rel, "policy.subquery", f"policy {r.polname} contains a subquery")
        for r in _rows(
            conn,
            """SELECT polrelid::regclass::text AS rel, polname FROM pg_policy
                WHERE position('{SUBLINK' IN coalesce(polqual::text, '')) > 0
                   OR position('{SUBLINK' IN coalesce(polwithcheck::text, '')) > 0""",
        )
    ]


# -- ownership -----------------------------------------------------------------------


def _check_ownership(conn: Connection, tables: dict[int, Table]) -> list[Violation]:
    out = [
        Violation(t.name, "owner.table", f"owned by {t.owner}, not {OWNER}")
        for t in tables.values()
        if t.owner != OWNER
    ]
    out += [
        Violation(r.nspname, "owner.schema", f"owned by {r.owner}, not {OWNER}")
        for r in _rows(
            conn,
            f"""SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n
                 WHERE NOT {_SYSTEM} AND n.nspname <> 'public'""",
        )
        if r.owner != OWNER
    ]
    for r in _rows(
        conn,
        f"""SELECT p.oid::regprocedure::text AS fn, pg_get_userbyid(p.proowner) AS owner
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE NOT {_SYSTEM} AND NOT EXISTS (
                   SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')""",
    ):
        expected = DEFINERS.get(r.fn, OWNER)
        if r.owner != expected:
            out.append(Violation(r.fn, "owner.function", f"owned by {r.owner}, not {expected}"))
    out += _owned_objects(conn, RUNTIME_LOGIN, allowed=set())
    out += _owned_objects(conn, "erp_ops", allowed=set())
    allowed = {f"function {fn}" for fn, owner in DEFINERS.items() if owner == AUTH_OWNER}
    out += _owned_objects(conn, AUTH_OWNER, allowed=allowed)
    return out


def _owned_objects(conn: Connection, role: str, allowed: set[str]) -> list[Violation]:
    """Everything `role` owns in this database (or cluster-wide), but temporary objects."""
    rows = _rows(
        conn,
        """SELECT CASE WHEN d.classid = 'pg_proc'::regclass
                       THEN 'function ' || d.objid::regprocedure::text
                       ELSE o.type || ' ' || o.identity END AS label
             FROM pg_shdepend d
            CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
            WHERE d.deptype = 'o' AND d.refclassid = 'pg_authid'::regclass
              AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = :role)
              AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
              AND coalesce(o.schema, '') NOT LIKE 'pg\\_temp\\_%'
              AND coalesce(o.schema, '') NOT LIKE 'pg\\_toast\\_temp\\_%'""",
        role=role,
    )
    return [Violation(role, "role.owns", f"owns {r.label}") for r in rows if r.label not in allowed]


# -- SECURITY DEFINER ------------------------------------------------------------------


def _check_definers(conn: Connection) -> list[Violation]:
    out: list[Violation] = []
    rows = _rows(
        conn,
        """SELECT p.oid::regprocedure::text AS fn, pg_get_userbyid(p.proowner) AS owner,
                  p.proconfig,
                  ARRAY(SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                    ELSE pg_get_userbyid(a.grantee) END
                          FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         WHERE a.privilege_type = 'EXECUTE') AS executors
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')""",
    )
    seen = {r.fn for r in rows}
    for fn in sorted(set(DEFINERS) - seen):
        out.append(Violation(fn, "definer.missing", "the allow-listed definer does not exist"))
    for r in rows:
        if r.fn not in DEFINERS:
            out.append(Violation(r.fn, "definer.allow_list", "SECURITY DEFINER not allow-listed"))
        path = _search_path(r.proconfig)
        if path is None:
            out.append(Violation(r.fn, "definer.search_path", "search_path is not pinned"))
        elif path[-1:] != ["pg_temp"]:
            out.append(
                Violation(
                    r.fn,
                    "definer.search_path",
                    f"search_path {', '.join(path)} does not end with pg_temp "
                    "(else pg_temp is searched first)",
                )
            )
        extra = set(r.executors) - {r.owner, RUNTIME_LOGIN}
        if extra:
            out.append(
                Violation(r.fn, "definer.execute", f"EXECUTE held by {', '.join(sorted(extra))}")
            )
    return out


def _search_path(proconfig: list[str] | None) -> list[str] | None:
    for item in proconfig or []:
        name, _, value = item.partition("=")
        if name == "search_path":
            return [p.strip().strip('"') for p in value.split(",") if p.strip()]
    return None


# -- roles and grants ------------------------------------------------------------------


def _check_roles(conn: Connection) -> list[Violation]:
    out: list[Violation] = []
    roles = {
        r.rolname: r
        for r in _rows(
            conn,
            """SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolinherit, rolcreaterole,
                      rolcreatedb, rolreplication
                 FROM pg_roles WHERE rolname IN ('erp_app', 'erp_owner', 'erp_ops', 'erp_auth')""",
        )
    }
    for missing in sorted({RUNTIME_LOGIN, OWNER, "erp_ops", AUTH_OWNER} - set(roles)):
        out.append(Violation(missing, "role.missing", "role does not exist"))
    app = roles.get(RUNTIME_LOGIN)
    if app is not None:
        expect = {
            "rolcanlogin": True,
            "rolsuper": False,
            "rolbypassrls": False,
            "rolinherit": False,
            "rolcreaterole": False,
            "rolcreatedb": False,
            "rolreplication": False,
        }
        for attr, want in expect.items():
            if getattr(app, attr) != want:
                out.append(Violation(RUNTIME_LOGIN, "role.attributes", f"{attr} is not {want}"))
    for name in (OWNER, "erp_ops", AUTH_OWNER):
        r = roles.get(name)
        if r is None:
            continue
        if r.rolcanlogin or r.rolsuper:
            out.append(Violation(name, "role.attributes", "must be NOLOGIN NOSUPERUSER"))
        if r.rolbypassrls and name != AUTH_OWNER:
            out.append(Violation(name, "role.attributes", "must be NOBYPASSRLS"))
    if app is not None:
        for r in _rows(
            conn,
            """SELECT rolname, pg_has_role('erp_app', oid, 'USAGE') AS inherits FROM pg_roles
                WHERE rolname <> 'erp_app' AND pg_has_role('erp_app', oid, 'MEMBER')""",
        ):
            if r.rolname in (OWNER, AUTH_OWNER) or r.rolname.startswith("pg_"):
                out.append(Violation(RUNTIME_LOGIN, "role.membership", f"member of {r.rolname}"))
            if r.inherits:
                out.append(
                    Violation(RUNTIME_LOGIN, "role.membership", f"inherits {r.rolname}'s rights")
                )
    return out


def _reachable_roles(conn: Connection) -> list[str]:
    """erp_app and every role it may SET ROLE to."""
    return [
        r.rolname
        for r in _rows(
            conn,
            "SELECT rolname FROM pg_roles WHERE pg_has_role('erp_app', oid, 'MEMBER')",
        )
    ]


def _check_grants(conn: Connection) -> list[Violation]:
    if not _rows(conn, "SELECT 1 FROM pg_roles WHERE rolname = 'erp_app'"):
        return []
    out: list[Violation] = []
    for role in _reachable_roles(conn):
        for r in _rows(
            conn,
            """SELECT c.oid::regclass::text AS rel, p.priv
                 FROM pg_class c CROSS JOIN unnest(CAST(:privs AS text[])) AS p(priv)
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND has_table_privilege(:role, c.oid, p.priv)""",
            role=role,
            privs=list(FORBIDDEN_PRIVILEGES),
        ):
            out.append(Violation(r.rel, "grant.forbidden", f"{role} holds {r.priv}"))
        for r in _rows(
            conn,
            "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(:role, oid, 'CREATE')",
            role=role,
        ):
            out.append(Violation(r.nspname, "grant.create", f"{role} may CREATE in the schema"))
        if _rows(
            conn,
            "SELECT 1 WHERE has_database_privilege(:role, current_database(), 'CREATE')",
            role=role,
        ):
            out.append(Violation("database", "grant.create", f"{role} may CREATE schemas"))
    for r in _rows(
        conn,
        """SELECT c.oid::regclass::text AS rel FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND (has_table_privilege('erp_app', c.oid, :table_privs)
                   OR has_any_column_privilege('erp_app', c.oid, :column_privs))""",
        table_privs=", ".join(ALL_TABLE_PRIVILEGES),
        column_privs="SELECT, INSERT, UPDATE, REFERENCES",
    ):
        out.append(
            Violation(r.rel, "grant.platform", "erp_app holds a privilege (not via erp_ops)")
        )
    for r in _rows(
        conn,
        f"""SELECT DISTINCT c.oid::regclass::text AS rel, a.privilege_type
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE NOT {_SYSTEM} AND a.grantee = 0""",
    ):
        out.append(Violation(r.rel, "grant.public", f"PUBLIC holds {r.privilege_type}"))
    return out


# -- append-only ------------------------------------------------------------------------


def _is_guard(trigger: dict[str, Any], events: int) -> bool:
    return (
        trigger["function"] == "app.refuse_change()"
        and trigger["tgenabled"] in ("O", "A")
        and trigger["tgtype"] & TG_BEFORE
        and trigger["tgtype"] & events == events
    )


def _check_append_only(conn: Connection, tables: dict[int, Table]) -> list[Violation]:
    out: list[Violation] = []
    for t in tables.values():
        guarded = any(_is_guard(tr, TG_UPDATE) or _is_guard(tr, TG_DELETE) for tr in t.triggers)
        if t.name not in APPEND_ONLY and not guarded:
            continue
        statement_level = [tr for tr in t.triggers if not tr["tgtype"] & TG_ROW]
        if not any(_is_guard(tr, TG_TRUNCATE) for tr in statement_level):
            out.append(Violation(t.name, "trigger.truncate", "no BEFORE TRUNCATE guard"))
        if t.name not in APPEND_ONLY:
            continue
        row_level = [tr for tr in t.triggers if tr["tgtype"] & TG_ROW]
        if not any(_is_guard(tr, TG_UPDATE | TG_DELETE) for tr in row_level):
            out.append(
                Violation(t.name, "trigger.update_delete", "no BEFORE UPDATE OR DELETE guard")
            )
        for r in _rows(
            conn,
            """SELECT has_table_privilege('erp_app', CAST(:t AS oid), 'UPDATE, DELETE')
                   OR has_any_column_privilege('erp_app', CAST(:t AS oid), 'UPDATE') AS w""",
            t=t.oid,
        ):
            if r.w:
                out.append(Violation(t.name, "grant.append_only", "erp_app may UPDATE or DELETE"))
    return out
