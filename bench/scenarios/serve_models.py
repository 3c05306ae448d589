"""serve_models: gunicorn's worker model and size, measured (not in the default run:
`erp bench serve_models`).

The same postings scratch database as the posting scenarios; for each of
`configs` (`<worker class>:<workers>x<threads>`), `erp serve` starts with that
model and size, wrk loads it with two-leg postings (`clients` connections, a Lua
body per request) and then with `GET /api/v1/me`, and it stops. Two passes, the
second in the reverse order, to share the drift of a shared machine. The
headline is each configuration's postings/s against the default's
(`erp serve`: WEB_CONCURRENCY or 2 workers, 4 threads, gthread); bench/README.md
draws the rule for WEB_CONCURRENCY from it.

sync workers answer one request per connection and close it (no keep-alive), so
wrk reconnects for every request: that is what a sync worker costs when nothing
in front of it (nginx, a load balancer) holds the client connections.
"""

from __future__ import annotations

import json

from bench import wrk
from bench.apps import server_env
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import posting_checks
from bench.scenarios.ledger_post_api import API, PATH, posting_script
from bench.scenarios.ledger_workers import posting_database
from bench.web import gunicorn

DEFAULT = "gthread:2x4"


def parse(config: str) -> tuple[str, int, int]:
    """`gthread:2x4` -> ("gthread", 2, 4)."""
    kind, _, size = config.partition(":")
    workers, _, threads = size.partition("x")
    if kind not in ("sync", "gthread") or not workers.isdigit() or not threads.isdigit():
        raise ValueError(f"serve_models: {config!r} is not <sync|gthread>:<workers>x<threads>")
    return kind, int(workers), int(threads)


def run(ctx: Context) -> Result:
    p = ctx.params
    configs: list[str] = list(p["configs"])
    if DEFAULT not in configs:
        configs.append(DEFAULT)
    sizes = {c: parse(c) for c in configs}
    posts = {c: wrk.WrkSeries() for c in configs}
    mes = {c: wrk.WrkSeries() for c in configs}
    posted, runs = 0, 0
    with posting_database(ctx, "models", key_scopes=["ledger:read", "ledger:write"]) as setup:
        env = server_env(setup.settings.replace(log_level=p["log_level"]))
        post_script = posting_script(p, setup.api_key)
        me_script = wrk.static_script("GET", {"Authorization": f"Bearer {setup.api_key}"})
        for order in (configs, configs[::-1]):
            for config in order:
                kind, workers, threads = sizes[config]
                with gunicorn(env, workers=workers, threads=threads, worker_class=kind) as server:

                    def load(path: str, script: str, seconds: float) -> wrk.WrkResult:
                        return wrk.run(
                            server.url + path,
                            script,
                            connections=p["clients"],
                            threads=p["wrk_threads"],
                            duration_s=seconds,
                        )

                    warm = load(PATH, post_script, p["warmup_s"])
                    got = load(PATH, post_script, p["seconds"])
                    posts[config].add(got)
                    posted += warm.requests + got.requests
                    runs += 2
                    mes[config].add(load("/api/v1/me", me_script, p["seconds"]))
                ctx.log(
                    f"{config}: {got.ops_per_s:,.0f} postings/s, "
                    f"{mes[config].runs[-1].ops_per_s:,.0f} /me per s"
                )
        checks = posting_checks(setup.db, {API: posted}, {API: p["clients"] * runs})
    rows = [
        posts[c].row(f"{c} postings", ceiling=c == DEFAULT, role="default") for c in configs
    ] + [mes[c].row(f"{c} GET /api/v1/me") for c in configs]
    base_post, base_me = posts[DEFAULT].ops_per_s, mes[DEFAULT].ops_per_s
    ratios = [
        Ratio(
            f"{c} postings/{DEFAULT}",
            posts[c].ops_per_s / base_post,
            f"postings/s of the configuration / of erp serve's default ({DEFAULT}), same run, wrk",
            higher_is_worse=False,
        )
        for c in configs
        if c != DEFAULT
    ] + [
        Ratio(
            f"{c} me/{DEFAULT}",
            mes[c].ops_per_s / base_me,
            "the same for GET /api/v1/me",
            higher_is_worse=False,
        )
        for c in configs
        if c != DEFAULT
    ]
    errors = {c: posts[c].errors + mes[c].errors for c in configs}
    return Result(
        rows,
        ratios,
        [
            Check("no errors under load", not any(errors.values()), json.dumps(errors)),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {
            "postings_per_s": {c: round(posts[c].ops_per_s, 1) for c in configs},
            "me_per_s": {c: round(mes[c].ops_per_s, 1) for c in configs},
            **setup.facts(),
        },
        [f"wrk {p['clients']} connections; two passes, the second in reverse order"],
    )


SCENARIO = Scenario(
    name="serve_models",
    description="gunicorn worker model and size (sync vs gthread, workers x threads)",
    run=run,
    defaults={
        "configs": [
            "sync:2x1",
            "sync:4x1",
            "gthread:1x8",
            "gthread:2x2",
            DEFAULT,
            "gthread:2x8",
            "gthread:3x4",
            "gthread:4x4",
        ],
        "clients": 16,
        "wrk_threads": 2,
        "assets": 1000,
        "revenues": 4,
        "history": 20_000,
        "history_days": 30,
        # posting_database's PoolSpec wants a pool size; no pool runs here
        "threads": 1,
        "seconds": 8.0,
        "warmup_s": 2.0,
        "idempotency_key": False,
        "log_level": "INFO",
        "seed": 19,
    },
    quick={"configs": ["sync:2x1", DEFAULT], "seconds": 3.0, "warmup_s": 1.0},
    needs=("wrk",),
)
