"""ledger_balance_read: balance read latency of one account with `hot_entries` entries.

One tenant (default template), one hot asset account and `contra_accounts` revenue
accounts. Bulk load, as the superuser with triggers off: `hot_entries / lines`
posted transactions spread evenly over the last `days` days, each with `lines`
debits of the hot account and one balancing credit to a contra account (several
lines per transaction keep the load within minutes; the balance read does not care
how entries group into transactions), then `ledger.balance_deltas` written by one
aggregate INSERT exactly as the triggers would have summed it (per account and UTC
day, slot 0, as compaction leaves past days), then VACUUM ANALYZE.

Checks before measuring: the derived balance (now, and as of a random past time)
equals `sum(amount)` over the account's entries.

Measured through the service layer, each read its own unit of work (pre-ping,
BEGIN + tenant pin, the query, COMMIT), in alternating rounds:
`erp.ledger.queries.balance(s, account)` (as of now) and the same as of a random
past time (which also sums that day's entries after it). Comparison: the naive
`SELECT sum(amount) FROM ledger.entries WHERE account_id = :a` (it scans history),
through the same unit of work. Target: p99 < 5 ms.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.apps import provision, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import (
    DAYS,
    Span,
    Stopwatch,
    account_uuid,
    bulk_session,
    create_accounts,
    load_entries,
    load_hours,
    load_transactions,
    loadavg,
    table_sizes,
    vacuum_analyze,
)
from bench.servers import ScratchDatabase, scratch_database
from bench.stats import summarize, timed

TARGET_P99_MS = 5.0
NAIVE = text("SELECT sum(amount) FROM ledger.entries WHERE account_id = :a")
NAIVE_AS_OF = text(
    "SELECT coalesce(sum(amount), 0) FROM ledger.entries WHERE account_id = :a "
    "AND effective_at <= :as_of"
)


def load(ctx: Context, db: ScratchDatabase, tenant_id: uuid.UUID, span: Span) -> dict[str, Any]:
    """The hot account's history (see the module docstring); phase timings and sizes."""
    p = ctx.params
    lines = p["lines"]
    clock = Stopwatch()
    with bulk_session(db) as conn:
        load_transactions(conn, tenant_id, span)
        ctx.log(f"{span.count:,} transactions in {clock.lap('transactions_s')} s")
        # k < lines: a debit of the hot account, base + k; k = lines: the contra credit
        load_entries(
            conn,
            tenant_id,
            span,
            lines + 1,
            "CASE WHEN k < %(hot_lines)s THEN %(hot)s::uuid "
            "ELSE md5('revenue:' || n %% %(contras)s)::uuid END",
            "CASE WHEN k < %(hot_lines)s THEN 1 + (n::bigint * 48271) %% 100000 + k "
            "ELSE -(%(hot_lines)s * (1 + (n::bigint * 48271) %% 100000) "
            "+ %(hot_lines)s * (%(hot_lines)s - 1) / 2) END",
            {"hot_lines": lines, "hot": account_uuid("asset", 0), "contras": p["contra_accounts"]},
        )
        ctx.log(f"{span.count * (lines + 1):,} entries in {clock.lap('entries_s')} s")
        conn.execute(DAYS, {"tenant": tenant_id})
        clock.lap("deltas_s")
        load_hours(conn, tenant_id)  # what migration 0012's backfill does, per tenant
        clock.lap("hours_s")
        vacuum_analyze(conn)
        clock.lap("vacuum_analyze_s")
        # The load leaves gigabytes of dirty buffers: write them now, not while reads
        # are timed (a steady state's checkpoints spread that over minutes).
        conn.execute("CHECKPOINT")
        clock.lap("checkpoint_s")
        sizes = table_sizes(conn)
    ctx.log(f"balance_deltas and VACUUM ANALYZE: {clock.phases} ; {sizes}")
    return {"phases_s": clock.phases, "tables": sizes}


def verify(
    erp_db: Any, tenant_id: uuid.UUID, account: uuid.UUID, as_of: datetime, expected: int
) -> list[Check]:
    """The derived balance equals the sum of the account's entries, now and as of a time,
    and the account has the `expected` number of entries (all read as erp_app)."""
    from erp.ledger import queries

    def work(s: Any) -> tuple[int, int, int, int, int]:
        now = queries.balance(s, account).posted
        then = queries.balance(s, account, as_of).posted
        count, total = s.execute(
            text("SELECT count(*), sum(amount) FROM ledger.entries WHERE account_id = :a"),
            {"a": account},
        ).one()
        naive_then = s.execute(NAIVE_AS_OF, {"a": account, "as_of": as_of}).scalar_one()
        return now, int(total), then, int(naive_then), int(count)

    now, total, then, naive_then, count = erp_db.unit_of_work(work, tenant=tenant_id)
    return [
        Check("balance(now) = sum of the account's entries", now == total, f"{now} vs {total}"),
        Check(
            f"balance(as_of {as_of.isoformat()}) = sum of the entries up to then",
            then == naive_then,
            f"{then} vs {naive_then}",
        ),
        Check(f"the account has {expected:,} entries", count == expected, f"{count:,}"),
    ]


def explain(erp_db: Any, tenant_id: uuid.UUID, ids: list[uuid.UUID], when: datetime) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the balances query exactly as queries.balances sends it."""
    from erp.ledger import queries

    statement, params = queries.balances_statement(ids, when)
    sql = text("EXPLAIN (ANALYZE, BUFFERS) " + statement.text)
    rows = erp_db.unit_of_work(lambda s: s.execute(sql, params).all(), tenant=tenant_id)
    return "\n".join(r[0] for r in rows)


def measure(
    ctx: Context, erp_db: Any, tenant_id: uuid.UUID, account: uuid.UUID, span: Span
) -> tuple[dict[str, list[float]], list[float]]:
    """Reads as of now and as of a random past time, alternating in rounds; then the
    naive sum."""
    from erp.ledger import queries

    p = ctx.params
    rng = random.Random(p["seed"])
    end = span.start + timedelta(days=span.days)

    def read(as_of: datetime | None) -> float:
        return timed(
            lambda: erp_db.unit_of_work(
                lambda s: queries.balance(s, account, as_of), tenant=tenant_id, one_flight=True
            )
        )

    def random_past() -> datetime:
        return span.start + (end - span.start) * rng.random()

    latencies: dict[str, list[float]] = {"now": [], "as_of": []}
    for _ in range(p["warmup"]):
        read(None)
        read(random_past())
    size = p["round_size"]
    for r in range(0, p["reads"], size):
        order = ["now", "as_of"] if (r // size) % 2 == 0 else ["as_of", "now"]
        for variant in order:
            for _ in range(min(size, p["reads"] - r)):
                latencies[variant].append(read(None if variant == "now" else random_past()))
    naive = [
        timed(
            lambda: erp_db.unit_of_work(
                lambda s: s.execute(NAIVE, {"a": account}).scalar_one(), tenant=tenant_id
            )
        )
        for _ in range(p["naive_runs"])
    ]
    return latencies, naive


def run(ctx: Context) -> Result:
    p = ctx.params
    hot = account_uuid("asset", 0)
    count = p["hot_entries"] // p["lines"]
    now = datetime.now(UTC).replace(microsecond=0)
    span = Span(count, now - timedelta(days=p["days"]), p["days"])
    with scratch_database(ctx.servers, "balance") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant_id, _ = provision(erp_db, "bench-balance")
            create_accounts(erp_db, tenant_id, "asset", 1, ["asset"])
            create_accounts(erp_db, tenant_id, "revenue", p["contra_accounts"], ["revenue"])
            data = load(ctx, db, tenant_id, span)
            mid_day = span.at(count // 2) + timedelta(seconds=1)
            checks = verify(erp_db, tenant_id, hot, mid_day, count * p["lines"])
            plans = {
                "now": explain(erp_db, tenant_id, [hot], datetime.now(UTC)),
                "as_of": explain(erp_db, tenant_id, [hot], mid_day),
            }
            ctx.log(f"measuring {p['reads']} reads each way, then {p['naive_runs']} naive sums")
            load_before = loadavg()
            latencies, naive = measure(ctx, erp_db, tenant_id, hot, span)
            load_after = loadavg()
    rows = [
        summarize("balance(account), as of now", latencies["now"]),
        summarize("balance(account, as_of=random past time)", latencies["as_of"]),
        summarize(
            "naive: SELECT sum(amount) FROM ledger.entries WHERE account_id = :a",
            naive,
            ceiling=True,
            role="comparison",
        ),
    ]
    return Result(
        rows,
        [
            Ratio(
                f"balance p99/{TARGET_P99_MS:g} ms",
                rows[0].p99_ms / TARGET_P99_MS,
                f"p99 of a balance read (as of now, its own unit of work) / the issue's "
                f"{TARGET_P99_MS:g} ms",
                target=1.0,
            ),
            Ratio(
                f"balance as_of p99/{TARGET_P99_MS:g} ms",
                rows[1].p99_ms / TARGET_P99_MS,
                "the same for a random past as_of (adds that day's later entries)",
                target=1.0,
                headline="balance as_of p99",
                figure=f"{rows[1].p99_ms:.2f} ms p99",
                reference=f"{TARGET_P99_MS:g} ms",
            ),
            Ratio(
                "naive/balance",
                rows[2].mean_ms / rows[0].mean_ms,
                "mean time of the naive sum over the account's entries / of balance(): "
                "what the deltas save (higher is better)",
                higher_is_worse=False,
            ),
        ],
        checks,
        {
            "data": data,
            "hot_account": str(hot),
            "span": {"start": span.start.isoformat(), "days": span.days, "transactions": count},
            "plans": plans,
            "loadavg_during": [load_before, load_after],
        },
        [
            f"{p['hot_entries']:,} entries on the account, {p['lines']} per transaction, over "
            f"{p['days']} days; load phases (s): {data['phases_s']}",
            *_plan_lines("now", plans["now"]),
            *_plan_lines("as_of", plans["as_of"]),
        ],
    )


def _plan_lines(label: str, plan: str) -> list[str]:
    keys = ("Index", "Seq Scan", "Execution Time", "Buffers: shared", "rows=")
    lines = [ln.strip() for ln in plan.splitlines() if any(k in ln for k in keys)]
    return [f"plan ({label}): {ln}" for ln in lines[:12]]


SCENARIO = Scenario(
    name="ledger_balance_read",
    description="balance read p50/p99 of one account with 10 M entries vs the naive sum",
    run=run,
    defaults={
        "hot_entries": 10_000_000,
        "lines": 10,
        "contra_accounts": 10,
        "days": 365,
        "reads": 2000,
        "round_size": 100,
        "warmup": 50,
        "naive_runs": 3,
        "seed": 5,
    },
    quick={"hot_entries": 200_000, "reads": 300, "warmup": 20},
)
