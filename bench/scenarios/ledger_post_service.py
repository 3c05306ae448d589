"""ledger_post_service: two-leg postings per second through the service layer, beside
the same rows inserted by a plpgsql function under pgbench.

One tenant (default template) with `assets` asset and `revenues` revenue accounts and
a history of `history` posted transactions over `history_days` days (bulk-loaded, then
VACUUM ANALYZE: postings land in a ledger with data and statistics, as in
production; when the server runs without autovacuum the ledger tables are analyzed
between rounds, as autoanalyze would, else pooled sessions keep plans made on
smaller tables while pgbench's fresh sessions re-plan).
Each posting debits a random asset account and credits a random revenue account,
through `erp.ledger.services.post_transaction` inside `erp.extensions.db.unit_of_work`
(its own committed transaction), from `processes` spawned processes x `threads`
threads (one connection each: Python threads in one process share a GIL).

Ceiling, same run, same server: `bench.post_pair` (ledger_data.py; the same rows and
triggers: one transaction, two entries in one INSERT, one outbox event, RLS as
erp_app) under pgbench with as many clients (-M prepared, one round trip per
transaction). Service and ceiling alternate in rounds (ABBA) to share the noise.
The issue's target is 5,000 postings/s.
"""

from __future__ import annotations

import os

from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import posting_checks
from bench.scenarios.ledger_workers import (
    FunctionCeiling,
    PostingPool,
    Series,
    measure,
    posting_database,
)
from bench.stats import Row

TARGET_PER_S = 5000.0


def run(ctx: Context) -> Result:
    p = ctx.params
    with posting_database(ctx, "post") as setup:
        with (
            PostingPool(setup.spec, p["processes"]) as pool,
            FunctionCeiling(setup.spec, p["processes"], p["pgbench_jobs"]) as ceiling,
        ):
            ctx.log(f"service: {pool.layout}; ceiling: {ceiling.method}")
            series = measure(
                ctx, setup, pool, ceiling, [("spread", "service"), ("spread", "ceiling")]
            )
        checks = posting_checks(setup.db, series.posted())
    service, fn = series.totals["spread", "service"], series.totals["spread", "ceiling"]
    rows = [
        service.row(f"post_transaction, {pool.layout}"),
        fn.row(f"bench.post_pair under pgbench, {ceiling.clients} clients", ceiling=True),
    ]
    errors = series.errors()
    return Result(
        rows,
        ratios(rows[0], rows[1]),
        [
            Check("no errors under load", not any(errors.values()), str(errors)),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {**extra(series, pool.layout, ceiling.method), **setup.facts()},
        [
            f"layout: {pool.layout}; ceiling: {ceiling.method}",
            setup.note(),
            f"the service's processes used {service.cores:.2f} cores, pgbench "
            f"{fn.cores:.2f}, of {os.cpu_count()}",
            *series.wait_lines,
        ],
    )


def extra(series: Series, layout: str, method: str) -> dict[str, object]:
    return {
        "layout": layout,
        "ceiling_method": method,
        "client_cores_used": {f"{v} {s}": round(m.cores, 2) for (v, s), m in series.totals.items()},
        "waits": series.waits,
        "loadavg_during": series.loadavg_during,
        "error_samples": series.error_samples(),
    }


def ratios(service: Row, ceiling: Row) -> list[Ratio]:
    return [
        Ratio(
            "service/ceiling",
            service.ops_per_s / ceiling.ops_per_s,
            "postings per second through post_transaction in a unit of work / the same rows "
            "by bench.post_pair under pgbench, same concurrency, server and run",
            higher_is_worse=False,
        ),
        Ratio(
            f"service/{TARGET_PER_S:,.0f} per s",
            service.ops_per_s / TARGET_PER_S,
            f"service postings per second / the issue's target of {TARGET_PER_S:,.0f}",
            target=1.0,
            higher_is_worse=False,
        ),
        Ratio(
            f"ceiling/{TARGET_PER_S:,.0f} per s",
            ceiling.ops_per_s / TARGET_PER_S,
            "what this server reaches with no application at all, against the same target "
            "(below 1: the target is out of reach on this machine whatever the service does)",
            higher_is_worse=False,
        ),
    ]


SCENARIO = Scenario(
    name="ledger_post_service",
    description="two-leg postings/s through the service layer, 16 connections, vs pgbench",
    run=run,
    defaults={
        "processes": 4,
        "threads": 4,
        "assets": 1000,
        "revenues": 4,
        "history": 200_000,
        "history_days": 30,
        "seconds": 20.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "pgbench_jobs": 2,
    },
    quick={"seconds": 3.0, "rounds": 1, "warmup_s": 0.5, "history": 20_000},
)
