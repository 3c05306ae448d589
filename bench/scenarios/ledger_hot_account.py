"""ledger_hot_account: every posting debits one asset account, beside postings spread
over all of them.

The tenant, accounts and method of ledger_post_service (service layer, `processes`
x `threads` connections, each posting its own committed transaction). Variant `hot`
debits asset account 0 in every posting; `spread` debits a random one of `assets`;
both credit a random one of `revenues`. They alternate in rounds (ABBA). Ratio
hot/spread in postings per second: the issue's target is >= 0.5.

With `ceiling` on, the same two variants also run as `bench.post_pair` under
pgbench: hot/spread inside PostgreSQL alone tells the database's contention on the
hot account (its balance_deltas rows, the FK key-share locks on its row) apart from
the application's.
"""

from __future__ import annotations

import os

from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import posting_checks
from bench.scenarios.ledger_post_service import extra
from bench.scenarios.ledger_workers import (
    FunctionCeiling,
    PostingPool,
    measure,
    posting_database,
)
from bench.stats import Row

TARGET = 0.5


def run(ctx: Context) -> Result:
    p = ctx.params
    sides = ["service", "ceiling"] if p["ceiling"] else ["service"]
    combos = [(v, s) for s in sides for v in ("hot", "spread")]
    with posting_database(ctx, "hot") as setup:
        with (
            PostingPool(setup.spec, p["processes"]) as pool,
            FunctionCeiling(setup.spec, p["processes"], p["pgbench_jobs"]) as ceiling,
        ):
            ctx.log(f"service: {pool.layout}; ceiling: {ceiling.method}")
            series = measure(ctx, setup, pool, ceiling, combos)
        checks = posting_checks(setup.db, series.posted())
    t = series.totals
    rows = [
        t["hot", "service"].row(f"hot: one asset account, {pool.layout}"),
        t["spread", "service"].row(
            f"spread: {p['assets']} asset accounts, {pool.layout}", ceiling=True, role="comparison"
        ),
    ]
    if p["ceiling"]:
        rows += [
            t["hot", "ceiling"].row("hot: bench.post_pair under pgbench", ceiling=True),
            t["spread", "ceiling"].row("spread: bench.post_pair under pgbench", ceiling=True),
        ]
    errors = series.errors()
    return Result(
        rows,
        _ratios(rows),
        [
            Check("no errors under load", not any(errors.values()), str(errors)),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {**extra(series, pool.layout, ceiling.method), **setup.facts()},
        [
            setup.note(),
            f"layout: {pool.layout}" + (f"; ceiling: {ceiling.method}" if p["ceiling"] else ""),
            "the service's processes used "
            + ", ".join(f"{t[v, 'service'].cores:.2f} cores ({v})" for v in ("hot", "spread"))
            + f" of {os.cpu_count()}",
            *series.wait_lines,
        ],
    )


def _ratios(rows: list[Row]) -> list[Ratio]:
    out = [
        Ratio(
            "hot/spread",
            rows[0].ops_per_s / rows[1].ops_per_s,
            "service postings per second when every posting debits one account / when they "
            "spread over all asset accounts, same run (higher is better)",
            target=TARGET,
            higher_is_worse=False,
        )
    ]
    if len(rows) == 4:
        out += [
            Ratio(
                "hot/spread in PostgreSQL alone",
                rows[2].ops_per_s / rows[3].ops_per_s,
                "the same ratio for bench.post_pair under pgbench: the database's share",
                higher_is_worse=False,
            ),
            Ratio(
                "service/ceiling hot",
                rows[0].ops_per_s / rows[2].ops_per_s,
                "hot postings per second, service layer / pgbench",
                higher_is_worse=False,
            ),
        ]
    return out


SCENARIO = Scenario(
    name="ledger_hot_account",
    description="postings/s when every posting debits one account vs spread over 1,000",
    run=run,
    defaults={
        "processes": 4,
        "threads": 4,
        "assets": 1000,
        "revenues": 4,
        "history": 200_000,
        "history_days": 30,
        "seconds": 16.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "pgbench_jobs": 2,
        "ceiling": True,
    },
    quick={"seconds": 3.0, "rounds": 1, "warmup_s": 0.5, "history": 20_000},
)
