"""ledger_post_api: two-leg postings per second through `POST /api/v1/ledger/transactions`,
beside the same postings through the service layer in the same run.

The tenant and accounts of ledger_post_service; an API key with ledger:write.
`erp serve` (gunicorn, `workers` processes, its default threads) runs on the scratch
database as erp_app, LOG_LEVEL=INFO as in production; `clients` keep-alive client
threads post random asset/revenue pairs (no Idempotency-Key unless
`idempotency_key`). In alternating rounds under the same conditions, the service
layer posts the same way from `processes` x `threads` connections (the
ledger_post_service layout): the comparison (API / service, target >= 0.3). Any
response other than 201 fails the run.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any

from bench.apps import serve_default_threads, server_env
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import (
    CURRENCY,
    WaitSampler,
    account_uuid,
    loadavg,
    posting_checks,
)
from bench.scenarios.ledger_workers import (
    MAX_AMOUNT,
    Measurement,
    PostingPool,
    Window,
    posting_database,
    round_orders,
)
from bench.web import LoadResult, Request, gunicorn, http_load

API = "bench api"
SERVICE = "bench service"
PATH = "/api/v1/ledger/transactions"
TARGET_RATIO = 0.3


def _requests(p: dict[str, Any], api_key: str, count: int = 20_000) -> list[Request]:
    """Pre-built POST requests with random pairs (building JSON is not the server's cost)."""
    rng = random.Random(p["seed"])
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    out = []
    for _ in range(count):
        amount = rng.randint(1, MAX_AMOUNT)
        body = {
            "description": API,
            "entries": [
                {
                    "account_id": str(account_uuid("asset", rng.randrange(p["assets"]))),
                    "amount": amount,
                    "currency": CURRENCY,
                },
                {
                    "account_id": str(account_uuid("revenue", rng.randrange(p["revenues"]))),
                    "amount": -amount,
                    "currency": CURRENCY,
                },
            ],
        }
        hdrs = (
            {**headers, "Idempotency-Key": str(uuid.uuid4())} if p["idempotency_key"] else headers
        )
        out.append(Request("POST", PATH, hdrs, json.dumps(body).encode(), expect=201))
    return out


def run(ctx: Context) -> Result:
    p = ctx.params
    per_round = p["seconds"] / p["rounds"]
    api, service = LoadResult(), Measurement()
    api_posted = 0
    loads: list[list[float]] = []
    with posting_database(ctx, "api", key_scopes=["ledger:read", "ledger:write"]) as setup:
        reqs = _requests(p, setup.api_key)
        samplers = {k: WaitSampler(setup.db.owner_url, setup.db.name) for k in ("api", "service")}
        env = server_env(setup.settings.replace(log_level=p["log_level"]))
        with (
            gunicorn(env, workers=p["workers"], threads=p["threads_per_worker"]) as server,
            PostingPool(setup.spec, p["processes"]) as pool,
        ):
            ctx.log(
                f"gunicorn {p['workers']} workers; {p['clients']} clients; service: {pool.layout}"
            )
            warm = http_load(
                server.port,
                lambda i: reqs[i % len(reqs)],
                threads=p["clients"],
                duration_s=p["warmup_s"],
            )
            api_posted += len(warm.latencies_s) - warm.errors
            warm_errors = warm.errors
            for order in round_orders(["api", "service"], p["rounds"]):
                for name in order:
                    with samplers[name].sampling():
                        if name == "api":
                            got = http_load(
                                server.port,
                                lambda i: reqs[i % len(reqs)],
                                threads=p["clients"],
                                duration_s=per_round,
                            )
                            api.add(got)
                            api_posted += len(got.latencies_s) - got.errors
                            rate = len(got.latencies_s) / got.wall_s
                        else:
                            m = pool.run(Window("spread", p["warmup_s"], per_round, SERVICE))
                            service.add(m)
                            rate = len(m.latencies_s) / m.seconds
                    setup.between_rounds()
                    loads.append(loadavg())
                    ctx.log(f"{name}: {rate:,.0f} postings/s (load {loads[-1][0]})")
            layout, log_tail, facts, note = pool.layout, server.tail(5), setup.facts(), setup.note()
        checks = posting_checks(setup.db, {API: api_posted, SERVICE: service.posted})
    api_row = api.row(f"POST {PATH}, {p['clients']} clients")
    service_row = service.row(f"post_transaction, {layout}", ceiling=True, role="service layer")
    samples = warm.error_samples + api.error_samples + service.error_samples
    return Result(
        [api_row, service_row],
        [
            Ratio(
                "api/service",
                api_row.ops_per_s / service_row.ops_per_s,
                "postings per second through POST /api/v1/ledger/transactions (gunicorn, API "
                "key) / through post_transaction in a unit of work, same run (higher is better)",
                target=TARGET_RATIO,
                higher_is_worse=False,
            )
        ],
        [
            Check(
                "every POST answered 201",
                api.errors + warm_errors == 0,
                f"{api.errors} errors ({warm_errors} during the warm-up)",
            ),
            Check("no service errors", service.errors == 0, f"{service.errors} errors"),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {
            "layout": layout,
            "api_reconnects": api.reconnects,
            "client_cores_used": {
                "api load generator": round(api.client_cpu_s / api.wall_s, 2),
                "service processes": round(service.cores, 2),
            },
            "waits": {k: s.shares(10) for k, s in samplers.items()},
            "loadavg_during": loads,
            "error_samples": samples[:5],
            "server_log_tail": log_tail,
            **facts,
        },
        [
            note,
            f"the HTTP load generator used {api.client_cpu_s / api.wall_s:.2f} cores, the "
            f"service processes {service.cores:.2f}, of {os.cpu_count()}",
            *(s.line(k) for k, s in samplers.items()),
            *(f"error sample: {s}" for s in samples[:3]),
        ],
    )


SCENARIO = Scenario(
    name="ledger_post_api",
    description="two-leg postings/s through POST /api/v1/ledger/transactions vs the service",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "processes": 4,
        "threads": 4,
        "assets": 1000,
        "revenues": 4,
        "history": 200_000,
        "history_days": 30,
        "seconds": 20.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "idempotency_key": False,
        "log_level": "INFO",
        "seed": 11,
    },
    quick={"seconds": 3.0, "rounds": 1, "warmup_s": 0.5, "history": 20_000},
)
