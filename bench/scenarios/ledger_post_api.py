"""ledger_post_api: two-leg postings per second through `POST /api/v1/ledger/transactions`,
beside the same postings through the service layer and the same rows by the plpgsql
ceiling under pgbench, all in the same run; and a CPU profile of one API worker.

The tenant and accounts of ledger_post_service; an API key with ledger:write.
`erp serve` (gunicorn, `workers` processes, its default threads) runs on the
scratch database as erp_app, LOG_LEVEL=INFO as in production. Three variants
alternate in rounds (ABC, CBA...) under the same conditions:

- api: wrk, `clients` keep-alive connections, a Lua script building each body (a
  random asset/revenue pair and amount; an Idempotency-Key only with
  `idempotency_key`);
- service: `post_transaction` in a unit of work from `processes` x `threads`
  connections (the ledger_post_service layout);
- ceiling: `bench.post_pair` under pgbench, as many clients.

Then, outside the measured rounds, wrk loads the API again for `profile_s` while
py-spy samples one worker (bench/profile.py); its top frames are printed.
Any response other than 201 fails the run.
"""

from __future__ import annotations

import os
from typing import Any

from bench import profile, wrk
from bench.apps import serve_default_threads, server_env
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import CURRENCY, WaitSampler, account_uuid, loadavg, posting_checks
from bench.scenarios.ledger_workers import (
    DESCRIPTIONS,
    MAX_AMOUNT,
    FunctionCeiling,
    Measurement,
    PostingPool,
    Window,
    posting_database,
    round_orders,
)
from bench.web import Server, gunicorn

API = "bench api"
PATH = "/api/v1/ledger/transactions"
API_TARGET = 0.2
SERVICE_TARGET = 0.4
API_SERVICE_TARGET = 0.3


def posting_script(p: dict[str, Any], api_key: str, description: str = API) -> str:
    """The wrk script posting random pairs of the bench accounts (p: assets, revenues,
    idempotency_key, seed)."""
    return wrk.postings_script(
        PATH,
        {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        [str(account_uuid("asset", n)) for n in range(p["assets"])],
        [str(account_uuid("revenue", n)) for n in range(p["revenues"])],
        description=description,
        currency=CURRENCY,
        max_amount=MAX_AMOUNT,
        idempotency_key=p["idempotency_key"],
        seed=p["seed"],
    )


def run(ctx: Context) -> Result:
    p = ctx.params
    per_round = p["seconds"] / p["rounds"]
    api, wrk_runs = wrk.WrkSeries(), 0
    api_posted = 0
    totals = {"service": Measurement(), "ceiling": Measurement()}
    loads: list[list[float]] = []
    with posting_database(ctx, "api", key_scopes=["ledger:read", "ledger:write"]) as setup:
        script = posting_script(p, setup.api_key)
        variants = ["api", "service", "ceiling"]
        samplers = {k: WaitSampler(setup.db.owner_url, setup.db.name) for k in variants}
        env = server_env(setup.settings.replace(log_level=p["log_level"]))
        with (
            gunicorn(env, workers=p["workers"], threads=p["threads_per_worker"]) as server,
            PostingPool(setup.spec, p["processes"]) as pool,
            FunctionCeiling(setup.spec, p["processes"], p["pgbench_jobs"]) as ceiling,
        ):

            def load(seconds: float) -> wrk.WrkResult:
                nonlocal api_posted, wrk_runs
                got = wrk.run(
                    server.url + PATH,
                    script,
                    connections=p["clients"],
                    threads=p["wrk_threads"],
                    duration_s=seconds,
                )
                api_posted += got.requests
                wrk_runs += 1
                return got

            ctx.log(
                f"gunicorn {p['workers']} workers x {p['threads_per_worker']} threads, wrk "
                f"{p['clients']} connections; service: {pool.layout}; ceiling: {ceiling.method}"
            )
            warm = load(p["warmup_s"])
            for order in round_orders(variants, p["rounds"]):
                for name in order:
                    with samplers[name].sampling():
                        if name == "api":
                            got = load(per_round)
                            api.add(got)
                            rate = got.ops_per_s
                        else:
                            window = Window("spread", p["warmup_s"], per_round, DESCRIPTIONS[name])
                            runner = pool if name == "service" else ceiling
                            m = runner.run(window)
                            totals[name].add(m)
                            rate = len(m.latencies_s) / m.seconds
                    setup.between_rounds()
                    loads.append(loadavg())
                    ctx.log(f"{name}: {rate:,.0f} postings/s (load {loads[-1][0]})")
            prof = _profile(ctx, server, lambda: load(p["profile_s"]), p["profile_s"])
            layout, method, log_tail = pool.layout, ceiling.method, server.tail(5)
            clients = ceiling.clients
        checks = posting_checks(
            setup.db,
            {
                API: api_posted,
                DESCRIPTIONS["service"]: totals["service"].posted,
                DESCRIPTIONS["ceiling"]: totals["ceiling"].posted,
            },
            {API: p["clients"] * wrk_runs},
        )
        facts, note = setup.facts(), setup.note()
    service, fn = totals["service"], totals["ceiling"]
    rows = [
        api.row(f"POST {PATH}, wrk {p['clients']} connections"),
        service.row(f"post_transaction, {layout}"),
        fn.row(f"bench.post_pair under pgbench, {clients} clients", ceiling=True),
    ]
    api_row, service_row, fn_row = rows
    errors = {"api": api.errors + warm.errors, "service": service.errors, "ceiling": fn.errors}
    return Result(
        rows,
        _ratios(api_row.ops_per_s, service_row.ops_per_s, fn_row.ops_per_s),
        [
            Check(
                "no errors under load (every POST answered 201)",
                not any(errors.values()),
                str(errors),
            ),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {
            "layout": layout,
            "ceiling_method": method,
            "load_generator": "wrk",
            "client_cores_used": {
                "wrk": round(api.client_cores, 2),
                "service processes": round(service.cores, 2),
                "pgbench": round(fn.cores, 2),
            },
            "waits": {k: s.shares(10) for k, s in samplers.items()},
            "loadavg_during": loads,
            "profile": prof.as_dict(),
            "error_samples": (service.error_samples + fn.error_samples)[:5],
            "server_log_tail": log_tail,
            **facts,
        },
        [
            note,
            f"ceiling: {method}",
            f"load generators: wrk {api.client_cores:.2f} cores, the service processes "
            f"{service.cores:.2f}, pgbench {fn.cores:.2f}, of {os.cpu_count()}",
            *(s.line(k) for k, s in samplers.items()),
            *prof.lines(_PROFILE_TITLE),
        ],
        summary=prof.lines(_PROFILE_TITLE),
    )


_PROFILE_TITLE = "CPU profile of one API worker under the posting load (py-spy, GIL samples)"


def _profile(ctx: Context, server: Server, load: Any, seconds: float) -> profile.Profile:
    """wrk on the API for `seconds` while py-spy records a worker: the first, or, when
    it recorded nothing (wrk's connections all went to another worker), the next."""
    if seconds <= 0:
        return profile.Profile(error="profile_s is 0")
    prof = profile.Profile(error="no worker")
    for worker in server.workers():
        prof = profile.record(worker, seconds, load)
        ctx.log(f"profiled worker {worker}: {prof.samples} samples {prof.error}".rstrip())
        if prof.samples:
            break
    return prof


def _ratios(api: float, service: float, ceiling: float) -> list[Ratio]:
    return [
        Ratio(
            "api/ceiling",
            api / ceiling,
            "postings per second through POST /api/v1/ledger/transactions (gunicorn, API key, "
            "wrk) / the same rows by bench.post_pair under pgbench, same run and server",
            target=API_TARGET,
            higher_is_worse=False,
            headline="api/ceiling",
            figure=f"{api:,.0f} postings/s",
            reference=f"{ceiling:,.0f}/s pgbench",
        ),
        Ratio(
            "service/ceiling",
            service / ceiling,
            "postings per second through post_transaction in a unit of work (16 connections) "
            "/ the same ceiling",
            target=SERVICE_TARGET,
            higher_is_worse=False,
            headline="service/ceiling",
            figure=f"{service:,.0f} postings/s",
            reference=f"{ceiling:,.0f}/s pgbench",
        ),
        Ratio(
            "api/service",
            api / service,
            "what HTTP, authentication and JSON leave of the service layer's rate",
            target=API_SERVICE_TARGET,
            higher_is_worse=False,
        ),
    ]


SCENARIO = Scenario(
    name="ledger_post_api",
    description="two-leg postings/s through the API (wrk) vs the service vs pgbench",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "processes": 4,
        "threads": 4,
        "pgbench_jobs": 2,
        "assets": 1000,
        "revenues": 4,
        "history": 200_000,
        "history_days": 30,
        "seconds": 30.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "profile_s": 10.0,
        "idempotency_key": False,
        "log_level": "INFO",
        "seed": 11,
    },
    quick={"seconds": 6.0, "rounds": 2, "warmup_s": 1.0, "history": 20_000, "profile_s": 3.0},
    needs=("wrk",),
)
