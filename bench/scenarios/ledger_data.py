"""Helpers shared by the ledger_* scenarios (not a scenario itself): the bench chart of
accounts, the plpgsql ceiling function, bulk loads, checks and wait-event sampling.

Account ids are derived from their number (`md5('asset:' || n)::uuid`), the same
in Python and in SQL, so pgbench scripts and bulk loads need no lookup table.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text

from bench.servers import ScratchDatabase

CURRENCY = "USD"


def account_uuid(kind: str, n: int) -> uuid.UUID:
    """The id of bench account `n` of `kind` ("asset", "revenue", "account"); SQL:
    `md5(kind || ':' || n)::uuid`."""
    return uuid.UUID(hashlib.md5(f"{kind}:{n}".encode()).hexdigest())  # noqa: S324


# -- accounts, through the app's login (RLS applies) ----------------------------------

_ACCOUNTS = text("""
    INSERT INTO ledger.accounts (id, code, name, type, currency)
    SELECT md5(CAST(:kind AS text) || ':' || n)::uuid,
           CAST(:prefix AS text) || lpad(n::text, 5, '0'),
           'Bench ' || CAST(:kind AS text) || ' ' || n,
           (CAST(:types AS text[]))[1 + n % cardinality(CAST(:types AS text[]))], :currency
      FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
""")


def create_accounts(
    erp_db: Any, tenant_id: uuid.UUID, kind: str, count: int, types: list[str], first: int = 0
) -> list[uuid.UUID]:
    """`count` accounts numbered from `first` (type cycling through `types`), created in
    one statement in a unit of work as erp_app; their ids, in number order."""
    prefix = {"asset": "BA", "revenue": "BR", "account": "BX"}[kind]

    def work(s: Any) -> None:
        s.execute(
            _ACCOUNTS,
            {
                "kind": kind,
                "prefix": prefix,
                "types": types,
                "currency": CURRENCY,
                "first": first,
                "last": first + count - 1,
            },
        )

    erp_db.unit_of_work(work, tenant=tenant_id)
    return [account_uuid(kind, n) for n in range(first, first + count)]


# -- the posting ceiling: the same rows, inserted by one plpgsql call ------------------

#: Created as the superuser in the scratch database; SECURITY INVOKER, so pgbench
#: calling it as erp_app pays what the service pays inside PostgreSQL: the same RLS
#: checks, the same rows (one transaction, two entries in one INSERT, one outbox
#: event) and the same triggers (before_insert, the deferred balance checks, the
#: balance_deltas upsert), minus the service's validation query and round trips.
CEILING_FUNCTION = f"""
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO erp_app;
CREATE FUNCTION bench.post_pair(tenant uuid, debit_no int, credit_no int, amount bigint,
                                memo text DEFAULT 'bench function')
    RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tx uuid := gen_random_uuid();
    e1 uuid := gen_random_uuid();
    e2 uuid := gen_random_uuid();
    dr uuid := md5('asset:' || debit_no)::uuid;
    cr uuid := md5('revenue:' || credit_no)::uuid;
    ts timestamptz := clock_timestamp();
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    INSERT INTO ledger.transactions (id, description, status, kind, effective_at, metadata)
    VALUES (tx, memo, 'posted', 'standard', ts, '{{}}');
    INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency, effective_at)
    VALUES (e1, tx, dr, amount, '{CURRENCY}', ts), (e2, tx, cr, -amount, '{CURRENCY}', ts);
    INSERT INTO webhooks.outbox_events (id, event_type, payload)
    VALUES (gen_random_uuid(), 'ledger.transaction.posted', jsonb_build_object(
        'id', tx, 'description', memo, 'status', 'posted', 'kind', 'standard',
        'effective_at', ts, 'posted_at', now(), 'metadata', '{{}}'::jsonb,
        'reverses_id', NULL, 'entries', jsonb_build_array(
            jsonb_build_object('id', e1, 'account_id', dr, 'amount', amount,
                               'currency', '{CURRENCY}'),
            jsonb_build_object('id', e2, 'account_id', cr, 'amount', -amount,
                               'currency', '{CURRENCY}'))));
END
$$;
"""


def create_ceiling_function(db: ScratchDatabase) -> None:
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute(CEILING_FUNCTION)


# -- checks after a run -------------------------------------------------------------

_BOOKS = """
SELECT (SELECT coalesce(sum(amount), 0) FROM ledger.entries) AS entries_sum,
       (SELECT count(*) FROM (
            SELECT account_id, sum(amount) AS s FROM ledger.entries GROUP BY 1) e
          FULL JOIN (
            SELECT account_id, sum(posted) AS s FROM ledger.balance_deltas GROUP BY 1) d
         USING (account_id)
         WHERE e.s IS DISTINCT FROM d.s) AS deltas_off
"""


def posting_checks(
    db: ScratchDatabase, expected: dict[str, int], in_flight: dict[str, int] | None = None
) -> list[tuple[str, bool, str]]:
    """(name, ok, detail): every posting counted was committed, the books balance, and
    balance_deltas agree with the entries for every account (the triggers kept up).

    `in_flight[description]`: how many more may have committed than were counted (wrk
    stops at its deadline without waiting for the answers of requests it has sent:
    at most one per connection and run)."""
    out: list[tuple[str, bool, str]] = []
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        counts: dict[str, int] = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT description, count(*) FROM ledger.transactions GROUP BY 1"
            )
        }
        for description, n in expected.items():
            found = int(counts.get(description, 0))
            slack = (in_flight or {}).get(description, 0)
            out.append(
                (
                    f"{description}: committed transactions = postings counted",
                    n <= found <= n + slack,
                    f"{found} in ledger.transactions, {n} counted"
                    + (f" (and up to {slack} in flight when wrk stopped)" if slack else ""),
                )
            )
        row = conn.execute(_BOOKS).fetchone()
        assert row is not None
    out.append(("the books balance (sum of all entries is 0)", row[0] == 0, f"sum {row[0]}"))
    out.append(
        (
            "balance_deltas agree with the entries for every account",
            row[1] == 0,
            f"{row[1]} accounts off",
        )
    )
    return out


# -- what the server's sessions wait on ------------------------------------------------


@dataclass
class WaitSampler:
    """Samples pg_stat_activity of one database every `interval_s` in a thread: how the
    sessions spend their time (CPU, Client:ClientRead = waiting on the app, IO:WALSync,
    Lock:..., LWLock:...). A session running with no wait event counts as "CPU"."""

    owner_url: str
    database: str
    interval_s: float = 0.05
    counts: Counter[str] = field(default_factory=Counter)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    #: Statements of the sessions that are active (running, or waiting on a lock or IO).
    active: Counter[str] = field(default_factory=Counter)

    _QUERY = """
        SELECT CASE WHEN state = 'active' AND wait_event IS NULL THEN 'CPU (active, no wait)'
                    WHEN state = 'idle' THEN 'idle (Client:ClientRead)'
                    WHEN state LIKE 'idle in transaction%%'
                         THEN 'idle in transaction (Client:ClientRead)'
                    ELSE coalesce(wait_event_type || ':' || wait_event, state) END,
               CASE WHEN state = 'active'
                    THEN left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 90) END
          FROM pg_stat_activity
         WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'
    """

    @contextmanager
    def sampling(self) -> Iterator[WaitSampler]:
        thread = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)

    def _run(self) -> None:
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            while not self._stop.is_set():
                for what, query in conn.execute(self._QUERY, [self.database]):
                    self.counts[what] += 1
                    if query:
                        self.active[query] += 1
                self.samples += 1
                self._stop.wait(self.interval_s)

    def shares(self, top: int = 8) -> dict[str, float]:
        """Average number of sessions in each state (sessions x share of time)."""
        if not self.samples:
            return {}
        return {k: round(v / self.samples, 2) for k, v in self.counts.most_common(top)}

    def active_shares(self, top: int = 5) -> dict[str, float]:
        """Average number of active sessions running each statement (its first 90 chars)."""
        if not self.samples:
            return {}
        return {k: round(v / self.samples, 2) for k, v in self.active.most_common(top)}

    def line(self, label: str) -> str:
        shares = ", ".join(f"{k} {v:.1f}" for k, v in self.shares(6).items())
        return f"{label}: average sessions by state: {shares}"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- bulk loads (as the superuser, triggers off, derived rows written by hand) --------

_SEQ_UUID = "lpad(to_hex({n}), 32, '0')::uuid"


@dataclass(frozen=True)
class Span:
    """`count` transactions, evenly spread over [start, start + days)."""

    count: int
    start: datetime
    days: int

    @property
    def step(self) -> timedelta:
        return timedelta(days=self.days) / self.count

    def at(self, n: int) -> datetime:
        """effective_at of transaction n (1-based), as the SQL below computes it."""
        return self.start + (n - 1) * self.step


def _effective_at(n: str) -> str:
    return f"(%(start)s::timestamptz + ({n} - 1) * %(step)s::interval)"


def load_transactions(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, span: Span) -> None:
    """`span.count` posted transactions with sequential ids (append-only index inserts)."""
    conn.execute(
        f"""
        INSERT INTO ledger.transactions (tenant_id, id, description, status, kind,
                                         effective_at, posted_at, created_at, metadata)
        SELECT %(tenant)s, {_SEQ_UUID.format(n="n")}, 'bulk', 'posted', 'standard', ts, ts, ts,
               '{{}}'
          FROM generate_series(1, %(count)s) AS n,
               LATERAL (SELECT {_effective_at("n")} AS ts) AS x
        """,
        {"tenant": tenant_id, "count": span.count, "start": span.start, "step": span.step},
    )


def load_entries(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    span: Span,
    lines: int,
    account_sql: str,
    amount_sql: str,
    params: dict[str, Any],
) -> None:
    """`lines` entries per transaction (k = 0 .. lines-1), each of `account_sql` and
    `amount_sql`, SQL expressions of n (the transaction) and k, balanced by the caller."""
    conn.execute(
        f"""
        INSERT INTO ledger.entries (tenant_id, id, transaction_id, account_id, amount,
                                    currency, effective_at)
        SELECT %(tenant)s, {_SEQ_UUID.format(n="n::bigint * %(lines)s + k")},
               {_SEQ_UUID.format(n="n")}, {account_sql}, {amount_sql}, %(currency)s,
               {_effective_at("n")}
          FROM generate_series(1, %(count)s) AS n,
               -- lateral on n: n outer, k inner, so every index sees ascending keys
               LATERAL generate_series(0, %(lines)s - 1 + 0 * n) AS k
        """,
        {
            "tenant": tenant_id,
            "count": span.count,
            "lines": lines,
            "start": span.start,
            "step": span.step,
            "currency": CURRENCY,
            **params,
        },
    )


#: What the after_insert trigger would have written, summed per account and UTC day
#: (balance_deltas) and UTC hour (balance_hours) into slot 0 (as compact_balance_deltas
#: leaves past days). Every bulk transaction is posted, so posted = sum(amount) and
#: nothing is pending.
DAYS = """
INSERT INTO ledger.balance_deltas (tenant_id, id, account_id, day, slot, posted,
                                   pending_dr, pending_cr)
SELECT tenant_id, gen_random_uuid(), account_id, (effective_at AT TIME ZONE 'UTC')::date, 0,
       sum(amount), 0, 0
  FROM ledger.entries
 WHERE tenant_id = %(tenant)s
 GROUP BY tenant_id, account_id, (effective_at AT TIME ZONE 'UTC')::date
 ORDER BY account_id, 4
"""
_HOURS = """
INSERT INTO ledger.balance_hours (tenant_id, id, account_id, hour, slot, posted,
                                  pending_dr, pending_cr)
SELECT tenant_id, gen_random_uuid(), account_id, date_trunc('hour', effective_at, 'UTC'), 0,
       sum(amount), 0, 0
  FROM ledger.entries
 WHERE tenant_id = %(tenant)s
 GROUP BY tenant_id, account_id, date_trunc('hour', effective_at, 'UTC')
 ORDER BY account_id, 4
"""

LEDGER_TABLES = (
    "ledger.transactions",
    "ledger.entries",
    "ledger.balance_deltas",
    "ledger.balance_hours",
)


@contextmanager
def bulk_session(db: ScratchDatabase) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection with triggers off (session_replication_role = replica):
    no per-row FK checks, no deferred balance checks, no per-statement delta upserts.
    Callers write the derived rows themselves (`load_deltas`)."""
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SET work_mem = '64MB'")
        try:
            yield conn
        finally:
            conn.execute("SET session_replication_role = origin")


def load_deltas(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """The daily sums, then the hourly ones (the aggregate migration 0012 backfills)."""
    conn.execute(DAYS, {"tenant": tenant_id})
    load_hours(conn, tenant_id)


def load_hours(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    conn.execute(_HOURS, {"tenant": tenant_id})


def vacuum_analyze(conn: psycopg.Connection[Any]) -> None:
    for table in LEDGER_TABLES:
        conn.execute(f"VACUUM (ANALYZE) {table}")


def autovacuum(db: ScratchDatabase) -> str:
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    return str(row[0]) if row else "unknown"


def analyze(db: ScratchDatabase) -> None:
    """What autoanalyze would do while tables grow: fresh statistics, and with them the
    invalidation of plans that sessions cached when the tables were smaller."""
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute(f"ANALYZE {', '.join(LEDGER_TABLES)}, webhooks.outbox_events")


def load_posting_history(
    db: ScratchDatabase, tenant_id: uuid.UUID, count: int, assets: int, revenues: int, days: int
) -> dict[str, Any]:
    """`count` posted two-leg transactions (asset debit, revenue credit) over the last
    `days` days, bulk-loaded as in the read scenarios, then VACUUM ANALYZE: postings are
    measured against a ledger with a history and statistics, as in production, not
    against empty tables (whose cached plans would not survive growth)."""
    clock = Stopwatch()
    span = Span(count, datetime.now(UTC) - timedelta(days=days), days)
    with bulk_session(db) as conn:
        load_transactions(conn, tenant_id, span)
        load_entries(
            conn,
            tenant_id,
            span,
            2,
            "CASE WHEN k = 0 THEN md5('asset:' || (n::bigint * 7919) %% %(assets)s) "
            "ELSE md5('revenue:' || n %% %(revenues)s) END::uuid",
            "CASE WHEN k = 0 THEN 1 + (n::bigint * 48271) %% 100000 "
            "ELSE -(1 + (n::bigint * 48271) %% 100000) END",
            {"assets": assets, "revenues": revenues},
        )
        load_deltas(conn, tenant_id)
        vacuum_analyze(conn)
    clock.lap("history_s")
    return {"transactions": count, "days": days, "seconds": clock.phases["history_s"]}


def table_sizes(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    out = {}
    for table in LEDGER_TABLES:
        row = conn.execute(
            f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}"
        ).fetchone()
        assert row is not None
        out[table] = {"rows": int(row[0]), "total_bytes": int(row[1])}
    return out


class Stopwatch:
    """Named phases of a load, in seconds."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.phases[name] = round(now - self._t, 2)
        self._t = now
        return self.phases[name]
