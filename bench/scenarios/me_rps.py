"""me_rps: authenticated `GET /api/v1/me` per second through gunicorn, beside /healthz.

`erp serve` (gunicorn, `workers` processes, its default threads) runs as a child
process on the scratch database as erp_app; an API key is issued through the
services. wrk (`clients` keep-alive connections) requests /api/v1/me (API-key
lookup in its own transaction, then the request's tenant transaction) and,
alternating in rounds under the same load, /healthz (no database, no
authentication): the ceiling of the same server, client and machine.
"""

from __future__ import annotations

import json
import os

from bench import wrk
from bench.apps import provision, serve_default_threads, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.servers import scratch_database
from bench.web import get, gunicorn

TARGET = 0.6


def run(ctx: Context) -> Result:
    p = ctx.params
    with scratch_database(ctx.servers, "me") as db:
        settings = settings_for(db, ctx.servers.redis_url, log_level=p["log_level"])
        with services(settings) as erp_db:
            tenant_id, key = provision(erp_db, "bench-me", key_scopes=["ledger:read"])
        auth = {"Authorization": f"Bearer {key}"}
        scripts = {
            "me": ("/api/v1/me", wrk.static_script("GET", auth)),
            "healthz": ("/healthz", wrk.static_script("GET", {})),
        }
        with gunicorn(server_env(settings), workers=p["workers"], threads=p["threads"]) as server:
            status, body = get(server.port, "/api/v1/me", auth)
            answered = json.loads(body)["tenant"]["id"] if status == 200 else None
            if answered != str(tenant_id):
                raise RuntimeError(f"/api/v1/me answered {status}: {body[:300]!r}")

            def load(name: str, seconds: float) -> wrk.WrkResult:
                path, script = scripts[name]
                return wrk.run(
                    server.url + path,
                    script,
                    connections=p["clients"],
                    threads=p["wrk_threads"],
                    duration_s=seconds,
                )

            for name in scripts:  # warm-up: pools, imports, prepared statements
                load(name, p["warmup_s"])
            results = {name: wrk.WrkSeries() for name in scripts}
            per_round = p["seconds"] / p["rounds"]
            ctx.log(f"wrk, {p['clients']} connections, {p['rounds']} rounds of {per_round:.0f} s")
            for r in range(p["rounds"]):
                for name in list(scripts) if r % 2 == 0 else list(scripts)[::-1]:
                    results[name].add(load(name, per_round))
            log_tail = server.tail(5)
    me_row = results["me"].row("GET /api/v1/me (API key)")
    hz_row = results["healthz"].row("GET /healthz", ceiling=True)
    errors = {k: v.errors for k, v in results.items()}
    return Result(
        [me_row, hz_row],
        [
            Ratio(
                "me/healthz",
                me_row.ops_per_s / hz_row.ops_per_s,
                "authenticated /api/v1/me requests per second / /healthz requests per second, "
                "same server, load generator (wrk) and machine (higher is better)",
                target=TARGET,
                higher_is_worse=False,
                headline="me rps",
                figure=f"{me_row.ops_per_s:,.0f} req/s",
                reference=f"{hz_row.ops_per_s:,.0f} req/s /healthz",
            )
        ],
        [Check("no errors under load", not any(errors.values()), json.dumps(errors))],
        {
            "load_generator": "wrk",
            "client_cores_used": {k: round(v.client_cores, 2) for k, v in results.items()},
            "server_log_tail": log_tail,
        },
        [
            "wrk used "
            + ", ".join(f"{v.client_cores:.2f} cores during {k}" for k, v in results.items())
            + f" of {os.cpu_count()}",
        ],
    )


SCENARIO = Scenario(
    name="me_rps",
    description="authenticated GET /api/v1/me per second under gunicorn, beside /healthz",
    run=run,
    defaults={
        "workers": 2,
        "threads": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "seconds": 16.0,
        "rounds": 4,
        "warmup_s": 2.0,
        "log_level": "INFO",
    },
    quick={"seconds": 4.0, "rounds": 2, "warmup_s": 1.0},
    needs=("wrk",),
)
