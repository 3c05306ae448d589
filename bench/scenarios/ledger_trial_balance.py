"""ledger_trial_balance: the trial balance over `entries` entries and `accounts` accounts.

One tenant (default template: 11 accounts) and `accounts` bench accounts (asset,
liability, revenue, expense in turn). Bulk load as in ledger_balance_read:
`entries / 2` posted two-leg transactions between pseudo-random distinct bench
accounts, spread evenly over the last `days` days; balance_deltas by one aggregate
INSERT (per account and UTC day, slot 0); VACUUM ANALYZE.

Check before measuring: every row of the trial balance equals the account's sum of
entries, and debits equal credits.

Measured through the service layer, each report its own unit of work, alternating:
`erp.ledger.reports.trial_balance(s)` as of now and as of a random past time.
Comparison: the naive `SELECT account_id, sum(amount) FROM ledger.entries GROUP BY
account_id` (it scans every entry), through the same unit of work. Target: < 1 s
(the ratio uses the slowest run).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.apps import provision, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_balance_read import explain
from bench.scenarios.ledger_data import (
    Span,
    Stopwatch,
    bulk_session,
    create_accounts,
    load_deltas,
    load_entries,
    load_transactions,
    loadavg,
    table_sizes,
    vacuum_analyze,
)
from bench.servers import ScratchDatabase, scratch_database
from bench.stats import summarize, timed

TARGET_MS = 1000.0
TYPES = ["asset", "liability", "revenue", "expense"]
NAIVE = text("SELECT account_id, sum(amount) FROM ledger.entries GROUP BY account_id")

#: The debit (k = 0) and credit (k = 1) accounts of transaction n: distinct, pseudo-random.
_ACCOUNT = (
    "md5('account:' || CASE WHEN k = 0 THEN (n::bigint * 7919) %% %(accounts)s "
    "ELSE ((n::bigint * 7919) %% %(accounts)s + 1 + (n::bigint * 104729) %% (%(accounts)s - 1))"
    " %% %(accounts)s END)::uuid"
)
_AMOUNT = (
    "CASE WHEN k = 0 THEN 1 + (n::bigint * 48271) %% 100000 "
    "ELSE -(1 + (n::bigint * 48271) %% 100000) END"
)


def load(ctx: Context, db: ScratchDatabase, tenant_id: uuid.UUID, span: Span) -> dict[str, Any]:
    clock = Stopwatch()
    with bulk_session(db) as conn:
        load_transactions(conn, tenant_id, span)
        clock.lap("transactions_s")
        load_entries(
            conn, tenant_id, span, 2, _ACCOUNT, _AMOUNT, {"accounts": ctx.params["accounts"]}
        )
        clock.lap("entries_s")
        load_deltas(conn, tenant_id)
        clock.lap("deltas_s")
        vacuum_analyze(conn)
        clock.lap("vacuum_analyze_s")
        sizes = table_sizes(conn)
    ctx.log(f"loaded in {clock.phases}; {sizes}")
    return {"phases_s": clock.phases, "tables": sizes}


def verify(erp_db: Any, tenant_id: uuid.UUID, accounts: int) -> list[Check]:
    """Every trial-balance row is the account's sum of entries; debits equal credits."""
    from erp.ledger import reports

    def work(s: Any) -> tuple[dict[str, Any], dict[Any, int]]:
        report = reports.trial_balance(s)
        naive = {r[0]: int(r[1]) for r in s.execute(NAIVE)}
        return report, naive

    report, naive = erp_db.unit_of_work(work, tenant=tenant_id)
    wrong = [
        r["code"]
        for r in report["rows"]
        if r["debit"] - r["credit"] != naive.get(r["account_id"], 0)
    ]
    totals = report["totals"]
    return [
        Check(
            "every trial-balance row = the account's sum of entries",
            not wrong and len(report["rows"]) >= accounts,
            f"{len(report['rows'])} rows, {len(wrong)} wrong {wrong[:5]}",
        ),
        Check(
            "debits = credits",
            all(t["debit"] == t["credit"] for t in totals),
            str(totals),
        ),
    ]


def measure(
    ctx: Context, erp_db: Any, tenant_id: uuid.UUID, span: Span
) -> tuple[dict[str, list[float]], list[float]]:
    from erp.ledger import reports

    p = ctx.params
    rng = random.Random(p["seed"])
    end = span.start + timedelta(days=span.days)

    def report(as_of: datetime | None) -> float:
        return timed(
            lambda: erp_db.unit_of_work(lambda s: reports.trial_balance(s, as_of), tenant=tenant_id)
        )

    def random_past() -> datetime:
        return span.start + (end - span.start) * rng.random()

    report(None)  # warm-up
    report(random_past())
    latencies: dict[str, list[float]] = {"now": [], "as_of": []}
    for i in range(p["runs"]):
        for variant in ("now", "as_of") if i % 2 == 0 else ("as_of", "now"):
            latencies[variant].append(report(None if variant == "now" else random_past()))
    naive = [
        timed(lambda: erp_db.unit_of_work(lambda s: s.execute(NAIVE).all(), tenant=tenant_id))
        for _ in range(p["naive_runs"])
    ]
    return latencies, naive


def run(ctx: Context) -> Result:
    p = ctx.params
    now = datetime.now(UTC).replace(microsecond=0)
    span = Span(p["entries"] // 2, now - timedelta(days=p["days"]), p["days"])
    with scratch_database(ctx.servers, "trial") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant_id, _ = provision(erp_db, "bench-trial")
            ids = create_accounts(erp_db, tenant_id, "account", p["accounts"], TYPES)
            data = load(ctx, db, tenant_id, span)
            checks = verify(erp_db, tenant_id, p["accounts"])
            all_ids = erp_db.unit_of_work(
                lambda s: list(s.scalars(text("SELECT id FROM ledger.accounts"))),
                tenant=tenant_id,
            )
            mid = span.at(span.count // 2) + timedelta(seconds=1)
            plans = {
                "now": explain(erp_db, tenant_id, all_ids, datetime.now(UTC)),
                "as_of": explain(erp_db, tenant_id, all_ids, mid),
            }
            ctx.log(f"{p['runs']} trial balances each way, {p['naive_runs']} naive GROUP BYs")
            load_before = loadavg()
            latencies, naive = measure(ctx, erp_db, tenant_id, span)
            load_after = loadavg()
    rows = [
        summarize(f"trial_balance(), {len(ids):,} bench accounts, as of now", latencies["now"]),
        summarize("trial_balance(as_of=random past time)", latencies["as_of"]),
        summarize(
            "naive: SELECT account_id, sum(amount) FROM ledger.entries GROUP BY 1",
            naive,
            ceiling=True,
            role="comparison",
        ),
    ]
    slowest = {k: max(v) * 1000 for k, v in latencies.items()}
    return Result(
        rows,
        [
            Ratio(
                f"trial balance max/{TARGET_MS:,.0f} ms",
                slowest["now"] / TARGET_MS,
                f"the slowest trial balance (as of now, its own unit of work) / the issue's "
                f"{TARGET_MS:,.0f} ms",
                target=1.0,
            ),
            Ratio(
                f"trial balance as_of max/{TARGET_MS:,.0f} ms",
                slowest["as_of"] / TARGET_MS,
                "the same as of a random past time",
                target=1.0,
            ),
            Ratio(
                "naive/trial balance",
                rows[2].mean_ms / rows[0].mean_ms,
                "mean time of the naive GROUP BY over every entry / of trial_balance() "
                "(higher is better)",
                higher_is_worse=False,
            ),
        ],
        checks,
        {
            "data": data,
            "max_ms": {k: round(v, 3) for k, v in slowest.items()},
            "span": {"start": span.start.isoformat(), "days": span.days},
            "plans": plans,
            "loadavg_during": [load_before, load_after],
        },
        [
            f"{p['entries']:,} entries, {p['accounts']:,} bench accounts, {p['days']} days; "
            f"load phases (s): {data['phases_s']}",
            "max ms: " + ", ".join(f"{k} {v:,.1f}" for k, v in slowest.items()),
            *(f"plan ({k}): {ln.strip()}" for k, v in plans.items() for ln in _key(v)),
        ],
    )


def _key(plan: str) -> list[str]:
    keys = ("Scan", "Join", "Execution Time", "Aggregate")
    return [ln for ln in plan.splitlines() if any(k in ln for k in keys)][:10]


SCENARIO = Scenario(
    name="ledger_trial_balance",
    description="trial balance over 1 M entries and 1,000 accounts vs the naive GROUP BY",
    run=run,
    defaults={
        "entries": 1_000_000,
        "accounts": 1000,
        "days": 60,
        "runs": 15,
        "naive_runs": 5,
        "seed": 3,
    },
    quick={"entries": 100_000, "runs": 5, "naive_runs": 3},
)
