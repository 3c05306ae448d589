"""request_cpu: the API process's CPU per request, one process, one thread, no contention.

`erp serve` with one worker of one thread (gthread: keep-alive, as the
production worker model), LOG_LEVEL=INFO as in production, on a scratch
database with the posting scenarios' tenant and accounts. wrk sends requests
one after another on one connection (-t1 -c1): `GET /healthz` (no database, no
authentication: the floor of any request), `GET /api/v1/me` (API-key lookup and
the tenant transaction) and `POST /api/v1/ledger/transactions` (a two-leg
posting, no Idempotency-Key), in rotating rounds. The worker's CPU time is read
from /proc/<pid>/task/*/schedstat (every thread's on-CPU nanoseconds) before and
after each round; CPU per request = its increase / the requests wrk completed.

CPU, not latency: the ratios do not depend on how fast the machine is, how busy
PostgreSQL is or what the load generator costs (PostgreSQL's own CPU is not in
them; the posting scenarios measure that side).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bench import profile, wrk
from bench.apps import server_env
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import posting_checks
from bench.scenarios.ledger_post_api import API, posting_script
from bench.scenarios.ledger_workers import posting_database
from bench.web import Server, cpu_seconds, gunicorn

POSTING_TARGET = 3.0
ME_TARGET = 2.0


@dataclass
class CpuSeries:
    series: wrk.WrkSeries = field(default_factory=wrk.WrkSeries)
    cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return self.series.requests

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / self.requests * 1000 if self.requests else float("nan")


def run(ctx: Context) -> Result:
    p = ctx.params
    with posting_database(ctx, "cpu", key_scopes=["ledger:read", "ledger:write"]) as setup:
        auth = {"Authorization": f"Bearer {setup.api_key}"}
        scripts = {
            "healthz": ("/healthz", wrk.static_script("GET", {})),
            "me": ("/api/v1/me", wrk.static_script("GET", auth)),
            "posting": ("/api/v1/ledger/transactions", posting_script(p, setup.api_key)),
        }
        env = setup.settings.replace(log_level=p["log_level"])
        with gunicorn(server_env(env), workers=1, threads=1, worker_class="gthread") as server:
            warm, results = measure(ctx, server, scripts, p["rounds"], p["seconds"], p["warmup_s"])
            profiled = per_request_profiles(ctx, server, scripts, p["profile_s"], p["profile_hz"])
            log_tail = server.tail(5)
        # Diagnostic, no target: the same worker with its sessions' commits not waited
        # for (synchronous_commit=off for this server's connections only): the same
        # Python work without the ~3 ms sleep on each posting's WAL flush.
        nowait = env.replace(database_url=_with_options(env.database_url, NO_WAIT))
        with gunicorn(server_env(nowait), workers=1, threads=1, worker_class="gthread") as server:
            quick = {k: scripts[k] for k in ("healthz", "posting")}
            rounds = max(2, p["rounds"] // 2)
            warm2, diag = measure(ctx, server, quick, rounds, p["seconds"] / 2, p["warmup_s"])
        per = {name: per_request(prof, got) for name, (prof, got) in profiled.items()}
        posted = sum(
            w["posting"].requests + r["posting"].requests
            for w, r in ((warm, results), (warm2, diag))
        ) + per.get("posting", {}).get("requests", 0)
        # one connection: at most one posting in flight per wrk run of the posting script
        checks = posting_checks(
            setup.db, {API: posted}, {API: 2 + p["rounds"] + rounds + len(profiled)}
        )
    hz, me, post = results["healthz"], results["me"], results["posting"]
    dhz, dpost = diag["healthz"], diag["posting"]
    rows = [
        post.series.row(f"POST /api/v1/ledger/transactions: {post.cpu_ms:.3f} ms CPU"),
        me.series.row(f"GET /api/v1/me: {me.cpu_ms:.3f} ms CPU"),
        hz.series.row(f"GET /healthz: {hz.cpu_ms:.3f} ms CPU", ceiling=True, role="floor"),
        dpost.series.row(f"diagnostic, commit not waited: POST: {dpost.cpu_ms:.3f} ms CPU"),
        dhz.series.row(f"diagnostic, same server: GET /healthz: {dhz.cpu_ms:.3f} ms CPU"),
    ]
    errors = {k: v.series.errors for k, v in results.items()}
    errors |= {f"diagnostic {k}": v.series.errors for k, v in diag.items()}
    definition = (
        "the API worker's CPU time per request (one worker, one thread, requests one at a "
        "time, LOG_LEVEL=INFO) / the same for GET /healthz"
    )
    return Result(
        rows,
        [
            Ratio(
                "posting cpu/healthz cpu",
                post.cpu_ms / hz.cpu_ms,
                definition,
                target=POSTING_TARGET,
                headline="posting cpu",
                figure=f"{post.cpu_ms:.2f} ms CPU",
                reference=f"{hz.cpu_ms:.2f} ms CPU /healthz",
            ),
            Ratio(
                "me cpu/healthz cpu",
                me.cpu_ms / hz.cpu_ms,
                definition,
                target=ME_TARGET,
                headline="me cpu",
                figure=f"{me.cpu_ms:.2f} ms CPU",
                reference=f"{hz.cpu_ms:.2f} ms CPU /healthz",
            ),
        ],
        [
            Check("no errors", not any(errors.values()), json.dumps(errors)),
            *(Check(n, ok, d) for n, ok, d in checks),
        ],
        {
            "cpu_ms_per_request": {k: round(v.cpu_ms, 4) for k, v in results.items()},
            "diagnostic_commit_not_waited_cpu_ms": {k: round(v.cpu_ms, 4) for k, v in diag.items()},
            "cpu_s": {k: round(v.cpu_s, 4) for k, v in results.items()},
            "requests": {k: v.requests for k, v in results.items()},
            "cpu_source": "/proc/<worker pid>/task/*/schedstat (on-CPU ns, all threads)",
            "profile_ms_per_request": per,
            "server_log_tail": log_tail,
            **setup.facts(),
        },
        [
            "CPU per request (the worker's, all its threads): "
            + ", ".join(f"{k} {v.cpu_ms:.3f} ms" for k, v in results.items()),
            "the ops/s column is sequential requests on one connection: latency, not capacity",
            *profile_lines(per),
            f"diagnostic (no target): posting/healthz with the commit not waited for "
            f"{dpost.cpu_ms / dhz.cpu_ms:.3f} (durable: {post.cpu_ms / hz.cpu_ms:.3f}): the "
            f"difference is what the WAL-flush wait itself costs the worker",
        ],
    )


NO_WAIT = "-c synchronous_commit=off"


def _with_options(url: str, options: str) -> str:
    """`url` with libpq `options` (a session setting for every connection it opens)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("options", options)])))


def measure(
    ctx: Context,
    server: Server,
    scripts: dict[str, tuple[str, str]],
    rounds: int,
    seconds: float,
    warmup_s: float,
) -> tuple[dict[str, wrk.WrkResult], dict[str, CpuSeries]]:
    """A warm-up run of each script, then `rounds` rotating rounds; the worker's CPU
    time (all threads) around each wrk run."""
    (worker,) = server.workers()

    def one(name: str, seconds: float) -> tuple[wrk.WrkResult, float]:
        path, script = scripts[name]
        before = cpu_seconds(worker)
        got = wrk.run(server.url + path, script, connections=1, threads=1, duration_s=seconds)
        time.sleep(0.05)  # the request in flight when wrk stopped ends in its own round
        return got, cpu_seconds(worker) - before

    warm = {name: one(name, warmup_s)[0] for name in scripts}
    results = {name: CpuSeries() for name in scripts}
    names = list(scripts)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            got, cpu = one(name, seconds / rounds)
            results[name].series.add(got)
            results[name].cpu_s += cpu
            each = cpu / got.requests * 1000 if got.requests else float("nan")
            ctx.log(f"{name}: {got.requests} requests, {each:.3f} ms CPU each")
    return warm, results


def per_request_profiles(
    ctx: Context,
    server: Server,
    scripts: dict[str, tuple[str, str]],
    seconds: float,
    rate_hz: int,
) -> dict[str, tuple[profile.Profile, wrk.WrkResult]]:
    """py-spy (GIL samples) on the worker while wrk sends /healthz, then postings, one
    at a time: each sample is 1/rate_hz s of the interpreter's time, so samples / rate
    / requests is the worker's Python time per request, frame by frame."""
    if seconds <= 0:
        return {}
    (worker,) = server.workers()
    out: dict[str, tuple[profile.Profile, wrk.WrkResult]] = {}
    for name in ("healthz", "posting"):
        path, script = scripts[name]
        box: list[wrk.WrkResult] = []

        def load(path: str = path, script: str = script, box: list[wrk.WrkResult] = box) -> None:
            box.append(
                wrk.run(server.url + path, script, connections=1, threads=1, duration_s=seconds)
            )

        prof = profile.record(worker, seconds, load, rate_hz=rate_hz)
        if prof.error or not box:
            ctx.log(f"no per-request profile of {name}: {prof.error or 'wrk did not run'}")
            return {}
        out[name] = (prof, box[0])
    return out


def per_request(prof: profile.Profile, got: wrk.WrkResult) -> dict[str, Any]:
    """GIL-held ms per request: in all, by package (self samples) and for the app's
    frames (cumulative)."""
    scale = 1000 / prof.rate_hz / max(1, got.requests)
    return {
        "requests": got.requests,
        "gil_ms": round(prof.samples * scale, 4),
        "by_package": {k: round(c * scale, 4) for k, c in prof.package_counts().most_common()},
        "self": {f: round(c * scale, 4) for f, c in prof.self_counts.most_common(40)},
        "cumulative_app": {f: round(c * scale, 4) for f, c in prof.app_counts().items()},
    }


def profile_lines(per: dict[str, dict[str, Any]]) -> list[str]:
    """Where a posting's Python time goes beyond /healthz's: GIL-held ms per request by
    package, side by side, and the app's frames a posting spends most in."""
    if set(per) != {"healthz", "posting"}:
        return ["per-request profile: not taken"]
    hz, post = per["healthz"], per["posting"]
    keys = sorted(post["by_package"], key=lambda k: -post["by_package"][k])[:10]
    return [
        f"per-request profile (py-spy, GIL-held ms per request): posting {post['gil_ms']:.3f}, "
        f"/healthz {hz['gil_ms']:.3f}",
        "  by package, posting (healthz): "
        + ", ".join(
            f"{k} {post['by_package'][k]:.3f} ({hz['by_package'].get(k, 0.0):.3f})" for k in keys
        ),
        "  posting, app frames (cumulative ms): "
        + ", ".join(f"{f} {ms:.3f}" for f, ms in list(post["cumulative_app"].items())[:8]),
    ]


SCENARIO = Scenario(
    name="request_cpu",
    description="the API worker's CPU per posting and per /api/v1/me, against /healthz",
    run=run,
    defaults={
        "assets": 1000,
        "revenues": 4,
        "history": 20_000,
        "history_days": 30,
        # the posting pool is not used here; posting_database's PoolSpec wants a size
        "threads": 1,
        "seconds": 18.0,
        "rounds": 6,
        "warmup_s": 2.0,
        "log_level": "INFO",
        "idempotency_key": False,
        "seed": 13,
        # a per-request py-spy profile of /healthz and of postings (0: none)
        "profile_s": 10.0,
        "profile_hz": 500,
    },
    quick={"seconds": 6.0, "rounds": 3, "warmup_s": 1.0, "history": 2_000, "profile_s": 2.0},
    needs=("wrk",),
)
