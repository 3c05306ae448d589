"""me_rps: authenticated `GET /api/v1/me` per second through gunicorn, beside /healthz.

`erp serve` (gunicorn, `workers` processes, its default threads) runs as a child
process on the scratch database as erp_app; an API key is issued through the
services. `clients` keep-alive threads request /api/v1/me (API-key lookup in its
own transaction, then the request's tenant transaction) and, alternating in
rounds under the same load, /healthz (no database, no authentication): the
ceiling of the same server, client and machine.
"""

from __future__ import annotations

import json
import os

from bench.apps import provision, serve_default_threads, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.servers import scratch_database
from bench.web import LoadResult, Request, get, gunicorn, http_load


def run(ctx: Context) -> Result:
    p = ctx.params
    with scratch_database(ctx.servers, "me") as db:
        settings = settings_for(db, ctx.servers.redis_url, log_level=p["log_level"])
        with services(settings) as erp_db:
            tenant_id, key = provision(erp_db, "bench-me", key_scopes=["ledger:read"])
        me = Request("GET", "/api/v1/me", {"Authorization": f"Bearer {key}"})
        healthz = Request("GET", "/healthz")
        with gunicorn(server_env(settings), workers=p["workers"], threads=p["threads"]) as server:
            status, body = get(server.port, me.path, me.headers)
            answered = json.loads(body)["tenant"]["id"] if status == 200 else None
            if answered != str(tenant_id):
                raise RuntimeError(f"/api/v1/me answered {status}: {body[:300]!r}")
            for req in (me, healthz):  # warm-up: pools, imports, prepared statements
                http_load(server.port, req, threads=p["clients"], duration_s=p["warmup_s"])
            results = {"me": LoadResult(), "healthz": LoadResult()}
            per_round = p["seconds"] / p["rounds"]
            ctx.log(f"{p['clients']} clients, {p['rounds']} rounds of {per_round:.1f} s each")
            for r in range(p["rounds"]):
                order = [("me", me), ("healthz", healthz)]
                for name, req in order if r % 2 == 0 else order[::-1]:
                    results[name].add(
                        http_load(server.port, req, threads=p["clients"], duration_s=per_round)
                    )
            log_tail = server.tail(5)
    me_row = results["me"].row("GET /api/v1/me (API key)")
    hz_row = results["healthz"].row("GET /healthz", ceiling=True)
    errors = {k: v.errors for k, v in results.items()}
    checks = [Check("no errors under load", not any(errors.values()), json.dumps(errors))]
    samples = [s for v in results.values() for s in v.error_samples]
    return Result(
        [me_row, hz_row],
        [
            Ratio(
                "me/healthz",
                me_row.ops_per_s / hz_row.ops_per_s,
                "authenticated /api/v1/me requests per second / /healthz requests per second, "
                "same server, clients and machine (higher is better)",
                higher_is_worse=False,
            )
        ],
        checks,
        {
            "reconnects": {k: v.reconnects for k, v in results.items()},
            "client_cores_used": {
                k: round(v.client_cpu_s / v.wall_s, 2) for k, v in results.items()
            },
            "error_samples": samples,
            "server_log_tail": log_tail,
        },
        [
            "the load generator used "
            + ", ".join(
                f"{v.client_cpu_s / v.wall_s:.2f} cores during {k}" for k, v in results.items()
            )
            + f" of {os.cpu_count()}",
            *(f"error sample: {s}" for s in samples),
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
        "seconds": 15.0,
        "rounds": 3,
        "warmup_s": 2.0,
        "log_level": "INFO",
    },
    quick={"seconds": 3.0, "rounds": 1, "warmup_s": 0.5},
)
