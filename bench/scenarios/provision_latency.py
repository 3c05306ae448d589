"""provision_latency: how long provisioning one tenant takes, through the API and below it.

`count` tenants from the `template` template through `POST /ops/v1/tenants`
(operator token, Idempotency-Key, gunicorn as in production, one keep-alive
client) and, alternating one for one, `count` more through
`erp.tenancy.services.provision_tenant` in a unit of work in this process: the
same work without HTTP, authentication or JSON, i.e. the ceiling. Sequential:
this is latency, not throughput. The issue's budget is 200 ms.
"""

from __future__ import annotations

import json
import time
import uuid

from bench.apps import provision, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.servers import scratch_database
from bench.stats import summarize
from bench.web import Client, Request, gunicorn

BUDGET_MS = 200.0


def run(ctx: Context) -> Result:
    from erp.tenancy.purge import create_operator_as_owner

    p = ctx.params
    run_id = uuid.uuid4().hex[:6]
    latencies: dict[str, list[float]] = {"http": [], "service": []}
    failures: list[str] = []
    with scratch_database(ctx.servers, "provision") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        token = create_operator_as_owner(db.owner_url, f"bench-{run_id}@example.com")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        in_process = settings.replace(log_level="WARNING")
        with (
            gunicorn(server_env(settings), workers=p["workers"]) as server,
            services(in_process) as erp_db,
        ):
            client = Client(server.port)
            ctx.log(f"{p['count']} tenants each way (+{p['warmup']} warm-up), alternating")
            try:
                for i in range(p["warmup"] + p["count"]):
                    ways = ("http", "service") if i % 2 == 0 else ("service", "http")
                    for way in ways:
                        slug = f"b{run_id}-{way[0]}-{i}"
                        t0 = time.perf_counter()
                        if way == "http":
                            status, body = client.send(_request(slug, p["template"], headers))
                            if status != 201:
                                failures.append(f"{slug}: {status} {body[:200]!r}")
                        else:
                            provision(erp_db, slug, template=p["template"])
                        if i >= p["warmup"]:
                            latencies[way].append(time.perf_counter() - t0)
            finally:
                client.close()
    http = summarize("POST /ops/v1/tenants (HTTP)", latencies["http"], errors=len(failures))
    service = summarize("provision_tenant() in-process", latencies["service"], ceiling=True)
    return Result(
        [http, service],
        [
            Ratio(
                "http/service",
                http.mean_ms / service.mean_ms,
                "mean provisioning time through POST /ops/v1/tenants / through the service in "
                "a unit of work (what HTTP, operator auth and idempotency add)",
            ),
            Ratio(
                f"http p99/{BUDGET_MS:.0f} ms",
                http.p99_ms / BUDGET_MS,
                f"p99 of POST /ops/v1/tenants / the issue's {BUDGET_MS:.0f} ms budget",
                target=1.0,
            ),
        ],
        [Check("every POST answered 201", not failures, json.dumps(failures[:3]))],
        {"error_samples": failures[:5]},
        [f"error sample: {f}" for f in failures[:3]],
    )


def _request(slug: str, template: str, headers: dict[str, str]) -> Request:
    body = {"slug": slug, "name": f"Bench {slug}", "base_currency": "USD", "template": template}
    return Request(
        "POST",
        "/ops/v1/tenants",
        {**headers, "Idempotency-Key": str(uuid.uuid4())},
        json.dumps(body).encode(),
        expect=201,
    )


SCENARIO = Scenario(
    name="provision_latency",
    description="provisioning one tenant: POST /ops/v1/tenants vs the service in-process",
    run=run,
    defaults={"count": 200, "warmup": 5, "template": "default", "workers": 2},
    quick={"count": 20, "warmup": 2},
)
