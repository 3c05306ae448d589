"""rls_overhead: what the tenant policy costs a read, against a BYPASSRLS ceiling.

A tenant table built exactly as DESIGN.md §3 says (the policy text is
policies/tenant_table.sql, as migrations apply it) holds `rows_per_tenant` rows
of each of `tenants` tenants, bulk-loaded by INSERT ... SELECT generate_series
as the superuser (which bypasses RLS). The same transactions then run as:

- rls: erp_app, `set_config('app.tenant_id', t, true)` first, then the query
  with NO tenant filter: the policy supplies it;
- ceiling: a BYPASSRLS login (`bench_bypass_<run>`) with an explicit
  `WHERE tenant_id = t` (FORCE RLS filters the owner too, so the owner is no ceiling).

and, to tell the GUC's statement from the policy's predicate, the ceiling's role
and query preceded by the same set_config (bypass+set_config).

Two queries (a point lookup by id, a range of `range_hours` rows by created_at)
and two ways of sending a transaction: per statement, exactly as the app does
(its `erp.db.PinnedConnection` sends the tenant pin in the same round trip as
BEGIN, so both sides pay BEGIN, the query and COMMIT), and pipelined, one round
trip per transaction, which leaves the server-side cost alone.
Variants alternate in rounds, in a rotating order, to spread noise evenly.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.core import Check, Context, Ratio, Result, Scenario
from bench.plans import Plan, explain, explain_generic
from bench.servers import ScratchDatabase, login_role, scratch_database, with_database
from bench.stats import Row, summarize
from erp.db import PinnedConnection, _pin_sql, tenant_context

#: The ceiling's login gets a per-run suffix: roles are server-wide, and two runs
#: on one server (a bench and the smoke test) must not share or drop each other's.
BYPASS_ROLE = "bench_bypass"
TABLE = "bench.documents"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)

SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
QUERIES = {
    ("point", "rls"): f"SELECT id, created_at, amount, memo FROM {TABLE} WHERE id = %s",
    ("point", "ceiling"): (
        f"SELECT id, created_at, amount, memo FROM {TABLE} WHERE tenant_id = %s AND id = %s"
    ),
    ("range", "rls"): (
        f"SELECT id, created_at, amount FROM {TABLE} WHERE created_at >= %s AND created_at < %s"
        " ORDER BY created_at LIMIT 100"
    ),
    ("range", "ceiling"): (
        f"SELECT id, created_at, amount FROM {TABLE} WHERE tenant_id = %s"
        " AND created_at >= %s AND created_at < %s ORDER BY created_at LIMIT 100"
    ),
}
EXPECTED_INDEX = {"point": "documents_pkey", "range": "ix_documents_created"}


def tenant_uuid(no: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"bench-tenant:{no}".encode()).hexdigest())  # noqa: S324


def document_uuid(tenant_no: int, n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"{tenant_no}:{n}".encode()).hexdigest())  # noqa: S324


# -- the data ----------------------------------------------------------------------

_SCHEMA = f"""
SET ROLE erp_owner;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO erp_app, {{bypass}};
CREATE TABLE {TABLE} (
    tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    amount bigint NOT NULL,
    memo text NOT NULL
);
GRANT SELECT ON {TABLE} TO erp_app, {{bypass}};
"""

# md5 gives ids the client can recompute; created_at is one row per tenant and
# hour, offset by the tenant so that tenants do not share timestamps.
_LOAD = f"""
INSERT INTO {TABLE} (tenant_id, id, created_at, amount, memo)
SELECT t.id,
       md5(t.no || ':' || n)::uuid,
       timestamptz '2025-01-01 00:00:00+00' + make_interval(hours => n, secs => t.no %% 3600),
       (n::bigint * 7919 + t.no * 104729) %% 1000000,
       'document ' || n
  FROM generate_series(1, %(per)s) AS n
 CROSS JOIN (SELECT g AS no, md5('bench-tenant:' || g)::uuid AS id
               FROM generate_series(1, %(tenants)s) AS g) AS t
"""

# Built after the load (a sorted build beats 2M random inserts); the end state is §3's.
_INDEXES = f"""
SET ROLE erp_owner;
ALTER TABLE {TABLE} ADD CONSTRAINT documents_pkey PRIMARY KEY (tenant_id, id);
CREATE INDEX ix_documents_created ON {TABLE} (tenant_id, created_at);
RESET ROLE;
"""


def load(ctx: Context, db: ScratchDatabase, bypass: str) -> dict[str, Any]:
    from erp.migrate import policy_sql

    p = ctx.params
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute(f'GRANT CONNECT ON DATABASE "{db.name}" TO {bypass}')
        with conn.transaction():
            conn.execute(_SCHEMA.format(bypass=bypass))
            conn.execute(policy_sql("tenant_table.sql", table=TABLE))
            conn.execute("RESET ROLE")
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '256MB'")
        with conn.transaction():
            conn.execute(_LOAD, {"per": p["rows_per_tenant"], "tenants": p["tenants"]})
        loaded = time.perf_counter()
        conn.execute(_INDEXES)
        conn.execute(f"VACUUM (ANALYZE) {TABLE}")
        indexed = time.perf_counter()
        row = conn.execute(
            "SELECT count(*), pg_total_relation_size(%s) FROM bench.documents", [TABLE]
        ).fetchone()
        assert row is not None
        _prewarm(conn)
    timing = {"insert_s": round(loaded - started, 2), "index_vacuum_s": round(indexed - loaded, 2)}
    ctx.log(
        f"loaded {row[0]:,} rows ({row[1] / 2**20:.0f} MiB with indexes) in "
        f"{timing['insert_s']} s + {timing['index_vacuum_s']} s for indexes and VACUUM ANALYZE"
    )
    return {"rows": row[0], "total_bytes": row[1], **timing}


def _prewarm(conn: psycopg.Connection[Any]) -> None:
    """Read the table and its indexes once so that no variant pays the cold reads."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        for rel in (TABLE, "bench.documents_pkey", "bench.ix_documents_created"):
            conn.execute("SELECT pg_prewarm(%s, 'read')", [rel])
            conn.execute("SELECT pg_prewarm(%s)", [rel])
    except psycopg.Error:
        conn.execute(f"SELECT sum(amount) FROM {TABLE}")


# -- the plans ---------------------------------------------------------------------


def _sample(p: dict[str, Any], rng: random.Random) -> tuple[int, int]:
    return rng.randint(1, p["tenants"]), rng.randint(1, p["rows_per_tenant"] - p["range_hours"])


def _args(query: str, side: str, tenant_no: int, n: int, hours: int) -> list[Any]:
    if query == "point":
        args: list[Any] = [document_uuid(tenant_no, n)]
    else:
        lo = BASE_TIME + timedelta(hours=n)
        args = [lo, lo + timedelta(hours=hours)]
    return [tenant_uuid(tenant_no), *args] if side == "ceiling" else args


def plans(
    ctx: Context, app_url: str, bypass_url: str
) -> tuple[dict[str, Any], list[Check], list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each query as erp_app (custom and generic plan)
    and, for comparison, of the ceiling's query as the BYPASSRLS role."""
    p = ctx.params
    tenant_no, n = _sample(p, random.Random(p["seed"]))
    out: dict[str, Any] = {}
    checks: list[Check] = []
    notes: list[str] = []
    with psycopg.connect(app_url) as app, psycopg.connect(bypass_url) as bypass:
        for query in ("point", "range"):
            app.execute(SET_TENANT, [str(tenant_uuid(tenant_no))])
            args = _args(query, "rls", tenant_no, n, p["range_hours"])
            custom = explain(app, QUERIES[query, "rls"], args)
            generic = explain_generic(app, QUERIES[query, "rls"], args)
            app.rollback()
            ceiling_args = _args(query, "ceiling", tenant_no, n, p["range_hours"])
            ceiling = explain(bypass, QUERIES[query, "ceiling"], ceiling_args)
            bypass.rollback()
            for kind, plan in (("custom", custom), ("generic", generic)):
                checks.append(_index_check(query, kind, plan))
                notes.append(f"plan of the {query} query as erp_app ({kind}):")
                notes += [f"    {line}" for line in plan.key_lines()]
            out[query] = {
                "rls": custom.text,
                "rls_generic": generic.text,
                "ceiling": ceiling.text,
                "rls_index": custom.uses_index_on("tenant_id"),
                "rls_generic_index": generic.uses_index_on("tenant_id"),
            }
    return out, checks, notes


def _index_check(query: str, kind: str, plan: Plan) -> Check:
    index = plan.uses_index_on("tenant_id")
    name = f"{query} query as erp_app uses the tenant index ({kind} plan)"
    if index is None or plan.seq_scans():
        banner = "!" * 100
        print(
            f"\n{banner}\n!!! THE RLS PLAN OF THE {query.upper()} QUERY ({kind}) DOES NOT USE AN "
            f"INDEX ON tenant_id: the policy's predicate is not an index condition.\n"
            f"{plan.text}\n{banner}\n",
            flush=True,
        )
        return Check(name, False, "no index condition on tenant_id:\n" + plan.text)
    detail = f"{index}" + (
        "" if index == EXPECTED_INDEX[query] else f" (expected {EXPECTED_INDEX[query]})"
    )
    return Check(name, True, detail)


# -- the measurement ---------------------------------------------------------------

#: rls: erp_app, set_config, the policy filters. guc: the ceiling's role and query,
#: plus the same set_config (so rls/guc is the policy's predicate alone).
#: ceiling: BYPASSRLS, explicit WHERE tenant_id, nothing else.
SIDES = ("rls", "guc", "ceiling")
SIDE_LABELS = {"rls": "rls", "guc": "bypass+set_config", "ceiling": "ceiling"}


@dataclass
class Variant:
    query: str
    side: str
    pipelined: bool
    conn: psycopg.Connection[Any]
    keys: list[tuple[int, int]]
    latencies: list[float] = field(default_factory=list)
    wrong: int = 0

    @property
    def label(self) -> str:
        mode = "pipelined" if self.pipelined else "per-statement"
        return f"{self.query} {SIDE_LABELS[self.side]} {mode}"

    def transaction(self, tenant_no: int, n: int, hours: int) -> float:
        """One transaction; returns its seconds and counts a wrong row count."""
        shape = "rls" if self.side == "rls" else "ceiling"
        args = _args(self.query, shape, tenant_no, n, hours)
        sql = QUERIES[self.query, shape]
        set_tenant = self.side != "ceiling"
        tenant = str(tenant_uuid(tenant_no))
        conn = self.conn
        started = time.perf_counter()
        if self.pipelined:
            with conn.pipeline():
                conn.execute("BEGIN")
                if set_tenant:  # the app's pin, as its own statement in the pipeline
                    conn.execute(_pin_sql(tenant, None))
                cur = conn.execute(sql, args)
                conn.execute("COMMIT")
            rows = cur.fetchall()
        elif set_tenant:  # the app's path: BEGIN carries the pin, then the query, COMMIT
            with tenant_context(uuid.UUID(tenant)):
                rows = conn.execute(sql, args).fetchall()
            conn.commit()
        else:
            rows = conn.execute(sql, args).fetchall()
            conn.commit()
        elapsed = time.perf_counter() - started
        if len(rows) != (1 if self.query == "point" else hours):
            self.wrong += 1
        return elapsed


def measure(ctx: Context, app_url: str, bypass_url: str) -> list[Variant]:
    p = ctx.params
    conns: list[psycopg.Connection[Any]] = []

    def connect(side: str, pipelined: bool) -> psycopg.Connection[Any]:
        url = app_url if side == "rls" else bypass_url
        if pipelined:
            conns.append(psycopg.connect(url, autocommit=True))
        elif side == "ceiling":
            conns.append(psycopg.connect(url))
        else:  # the app's own connection class: the tenant pin rides on BEGIN
            conns.append(PinnedConnection.connect(url))
        return conns[-1]

    try:
        by_side = {
            (side, pipelined): connect(side, pipelined)
            for side in SIDES
            for pipelined in (False, True)
        }
        total = p["warmup"] + p["transactions"]
        variants = [
            Variant(
                query,
                side,
                pipelined,
                by_side[side, pipelined],
                [],
            )
            for query in ("point", "range")
            for pipelined in (False, True)
            for side in SIDES
        ]
        for i, v in enumerate(variants):
            rng = random.Random(p["seed"] * 1000 + i)
            v.keys = [_sample(p, rng) for _ in range(total)]
        for v in variants:  # warm-up, not recorded
            for tenant_no, n in v.keys[: p["warmup"]]:
                v.transaction(tenant_no, n, p["range_hours"])
        round_size = p["round_size"]
        for r, start in enumerate(range(p["warmup"], total, round_size)):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for v in order:
                for tenant_no, n in v.keys[start : start + round_size]:
                    v.latencies.append(v.transaction(tenant_no, n, p["range_hours"]))
        return variants
    finally:
        for conn in conns:
            conn.close()


def _mean(v: Variant) -> float:
    return sum(v.latencies) / len(v.latencies)


def _ratios(variants: list[Variant]) -> list[Ratio]:
    by = {(v.query, v.side, v.pipelined): v for v in variants}
    mode = {False: "per-statement", True: "pipelined"}
    full = [
        Ratio(
            f"rls/ceiling {query} {mode[pipelined]}",
            _mean(by[query, "rls", pipelined]) / _mean(by[query, "ceiling", pipelined]),
            "mean transaction time as erp_app (set_config + policy, no tenant filter) / "
            "as a BYPASSRLS login with WHERE tenant_id (= ceiling ops/s / rls ops/s), "
            + mode[pipelined],
            target=1.10,
            goal=1.05,
        )
        for pipelined in (False, True)
        for query in ("point", "range")
    ]
    policy = [
        Ratio(
            f"rls/bypass+set_config {query} {mode[pipelined]}",
            _mean(by[query, "rls", pipelined]) / _mean(by[query, "guc", pipelined]),
            "the policy's predicate alone: both sides run the same set_config; " + mode[pipelined],
        )
        for pipelined in (False, True)
        for query in ("point", "range")
    ]
    return full + policy


def run(ctx: Context) -> Result:
    p = ctx.params
    bypass = f"{BYPASS_ROLE}_{uuid.uuid4().hex[:8]}"
    with (
        login_role(ctx.servers, bypass, "BYPASSRLS") as password,
        scratch_database(ctx.servers, "rls") as db,
    ):
        data = load(ctx, db, bypass)
        bypass_url = with_database(db.owner_url, db.name, bypass, password)
        plan_texts, checks, notes = plans(ctx, db.app_url, bypass_url)
        ctx.log(f"measuring {p['transactions']} transactions per variant, 12 variants")
        variants = measure(ctx, db.app_url, bypass_url)
    rows: list[Row] = [
        summarize(v.label, v.latencies, errors=v.wrong, ceiling=v.side == "ceiling")
        for v in variants
    ]
    wrong = sum(v.wrong for v in variants)
    checks.append(Check("every transaction saw the expected rows", wrong == 0, f"{wrong} wrong"))
    notes.insert(
        0,
        "per-statement: BEGIN, each statement and COMMIT are round trips (as SQLAlchemy sends "
        "them); pipelined: one round trip per transaction (server-side cost only)",
    )
    p50 = {
        (v.query, v.side, v.pipelined): row.p50_ms for v, row in zip(variants, rows, strict=True)
    }
    p50_ratios = {
        f"rls/ceiling {q} {'pipelined' if pipe else 'per-statement'}": round(
            p50[q, "rls", pipe] / p50[q, "ceiling", pipe], 4
        )
        for pipe in (False, True)
        for q in ("point", "range")
    }
    extra = {"data": data, "plans": plan_texts, "p50_ratios": p50_ratios, "bypass_role": bypass}
    return Result(rows, _ratios(variants), checks, extra, notes)


SCENARIO = Scenario(
    name="rls_overhead",
    description="indexed reads under the tenant policy vs a BYPASSRLS ceiling",
    run=run,
    defaults={
        "tenants": 1000,
        "rows_per_tenant": 2000,
        "transactions": 10000,
        "warmup": 300,
        "round_size": 50,
        "range_hours": 24,
        "seed": 7,
    },
    quick={"tenants": 100, "rows_per_tenant": 1000, "transactions": 1000, "warmup": 100},
)
