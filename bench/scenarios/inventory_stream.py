"""inventory_stream: commit -> SSE client with 200 clients connected, and what those
clients cost the API's ordinary requests.

As deployed (docs/operations.md, "Streams"): the API under `erp serve` (its default
model, 2 gthread workers of 4 threads) and the live streams under `erp stream`
(gunicorn gthread, one worker of many threads, one LISTEN session fanned out); the
ingress's path routing is replaced by the clients talking to each port directly.

In each of `rounds` rounds (alternating, so that a shared machine's drift hits both):

1. Idle: wrk loads `GET /api/v1/me` (`get_clients` connections) on the API for
   `seconds`.
2. Loaded: `clients` SSE clients (asyncio, one connection each, spread evenly over
   `tenants` tenants) connect to `GET /api/v1/inventory/events`; emitter threads of
   this process commit one `stock.changed` per transaction (`erp.webhooks.services.emit`,
   the outbox write stock moves make) at `rate` events/s over the tenants, while
   the same wrk load runs again; then the clients disconnect. Each event's latency,
   at each client of its tenant, is its arrival (the `id:` line read) minus its
   commit (the emitter's clock right after COMMIT returned; one process, one clock).

The GET figures are the medians of the rounds' p99s; the SSE latencies are pooled.
The stream process's CPU time over the loaded phases, per frame delivered, is noted.
Headlines: commit -> client p99 ÷ 250 ms, and the loaded GET p99 ÷ the idle one
(issue 16: < 250 ms, within 1.5x).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app

from bench import wrk
from bench.apps import provision, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.servers import scratch_database
from bench.stats import summarize
from bench.web import LOCALHOST, cpu_seconds, gunicorn

BOUND_S = 0.25
GET_BOUND = 1.5
PATH = "/api/v1/inventory/events"


class SseClients:
    """`n` SSE connections on one asyncio loop (its own thread): when each `id:` arrived."""

    def __init__(self, port: int, keys: list[str]) -> None:
        self.port = port
        self.keys = keys
        self.arrivals: dict[tuple[int, str], float] = {}
        self.connected = 0
        self.failed: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[asyncio.Future[None]] = []

    def start(self, timeout_s: float = 60) -> None:
        self.thread.start()
        for i, key in enumerate(self.keys):
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._client(i, key), self.loop))
        deadline = time.perf_counter() + timeout_s
        while self.connected + len(self.failed) < len(self.keys):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.connected} of {len(self.keys)} streams opened")
            time.sleep(0.05)
        if self.failed:
            raise RuntimeError(f"streams refused: {self.failed[:3]}")

    async def _client(self, index: int, key: str) -> None:
        reader, writer = await asyncio.open_connection(LOCALHOST, self.port)
        # HTTP/1.0: the body comes unchunked, one line at a time
        writer.write(
            f"GET {PATH} HTTP/1.0\r\nHost: {LOCALHOST}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        await writer.drain()
        status = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        if " 200 " not in status:
            self.failed.append(status.strip())
            writer.close()
            return
        await reader.readline()  # `retry:` - the stream's cursor is set
        self.connected += 1
        try:
            while line := await reader.readline():
                if line.startswith(b"id: "):
                    self.arrivals[(index, line[4:].strip().decode())] = time.perf_counter()
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # each closes its socket

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _emit_paced(
    app: Any, erp_db: Any, tenants: list[uuid.UUID], rate: float, seconds: float, threads: int
) -> tuple[dict[str, tuple[int, float]], float]:
    """One `stock.changed` per transaction at `rate`/s, round-robin over `tenants`:
    event id -> (tenant index, commit time), and the wall time taken."""
    from erp.webhooks import services as webhooks

    total = int(rate * seconds)
    committed: dict[str, tuple[int, float]] = {}
    lock = threading.Lock()
    started = time.perf_counter() + 0.05

    def emitter(offset: int) -> None:
        with app.app_context():
            for i in range(offset, total, threads):
                wait = started + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t = i % len(tenants)
                data = {
                    "item_id": str(uuid.uuid4()),
                    "sku": f"SKU-{i}",
                    "location_id": str(uuid.uuid4()),
                    "on_hand": i,
                    "reserved": 0,
                    "available": i,
                    "delta": {"on_hand": 1, "reserved": 0},
                    "sources": [{"type": "move", "id": str(uuid.uuid4())}],
                }
                event_id = erp_db.unit_of_work(
                    lambda s, data=data: webhooks.emit(s, "stock.changed", data),
                    tenant=tenants[t],
                )
                at = time.perf_counter()
                with lock:
                    committed[str(event_id)] = (t, at)

    pool = [threading.Thread(target=emitter, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return committed, time.perf_counter() - started


@dataclass
class Round:
    idle: wrk.WrkResult
    loaded: wrk.WrkResult
    latencies: list[float]
    expected: int
    arrived: int
    events: int
    wall_s: float
    stream_cpu_s: float


def _round(
    p: dict[str, Any],
    app: Any,
    erp_db: Any,
    tenant_ids: list[uuid.UUID],
    keys: list[str],
    load: Any,
    sse: Any,
) -> Round:
    """The GET load alone, then again beside `clients` streams and paced commits."""
    per_client = [i % len(tenant_ids) for i in range(p["clients"])]
    idle = load()
    clients = SseClients(sse.port, [keys[t] for t in per_client])
    clients.start()
    try:
        got: dict[str, Any] = {}

        def emit() -> None:
            committed, wall = _emit_paced(
                app, erp_db, tenant_ids, p["rate"], p["seconds"] + 1, p["emitters"]
            )
            got.update(committed=committed, wall=wall)

        emitting = threading.Thread(target=emit)
        stream_pids = sse.workers()
        cpu_before = sum(cpu_seconds(pid) for pid in stream_pids)
        emitting.start()
        loaded = load()
        emitting.join()
        committed: dict[str, tuple[int, float]] = got["committed"]
        expected = {
            (c, e) for e, (t, _) in committed.items() for c, ct in enumerate(per_client) if ct == t
        }
        deadline = time.perf_counter() + p["drain_s"]
        while time.perf_counter() < deadline and not expected <= clients.arrivals.keys():
            time.sleep(0.05)
        stream_cpu = sum(cpu_seconds(pid) for pid in stream_pids) - cpu_before
        arrived = {k: v for k, v in clients.arrivals.items() if k in expected}
    finally:
        clients.close()
    time.sleep(3)  # the stream process notices the clients left (within 1 s) and frees them
    return Round(
        idle,
        loaded,
        [at - committed[e][1] for (_c, e), at in arrived.items()],
        len(expected),
        len(arrived),
        len(committed),
        got["wall"],
        stream_cpu,
    )


def run(ctx: Context) -> Result:
    p = ctx.params
    rounds: list[Round] = []
    with scratch_database(ctx.servers, "stream") as db:
        settings = settings_for(db, ctx.servers.redis_url, log_level="WARNING")
        env = server_env(settings)
        with services(settings) as erp_db:
            made = [
                provision(erp_db, f"bench-sse-{i}-{uuid.uuid4().hex[:6]}", ["inventory:read"])
                for i in range(p["tenants"])
            ]
            tenant_ids, keys = [t for t, _ in made], [k for _, k in made]
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            me = wrk.static_script("GET", {"Authorization": f"Bearer {keys[0]}"})
            with (
                gunicorn(env) as api,
                gunicorn(env, workers=1, threads=p["stream_threads"], command="stream") as sse,
            ):

                def load() -> wrk.WrkResult:
                    return wrk.run(
                        api.url + "/api/v1/me",
                        me,
                        connections=p["get_clients"],
                        threads=1,
                        duration_s=p["seconds"],
                    )

                load()  # warm-up
                for i in range(p["rounds"]):
                    r = _round(p, app, erp_db, tenant_ids, keys, load, sse)
                    rounds.append(r)
                    ctx.log(
                        f"round {i + 1}: GET p99 {r.idle.p99_ms:.1f} -> {r.loaded.p99_ms:.1f} ms, "
                        f"{len(r.latencies)} frames"
                    )
    latencies = [x for r in rounds for x in r.latencies]
    expected, arrived = sum(r.expected for r in rounds), sum(r.arrived for r in rounds)
    achieved = sum(r.events for r in rounds) / sum(r.wall_s for r in rounds)
    stream_cpu = sum(r.stream_cpu_s for r in rounds)
    stream_ms_per_frame = stream_cpu / max(arrived, 1) * 1000
    idle_p99 = statistics.median(r.idle.p99_ms for r in rounds)
    loaded_p99 = statistics.median(r.loaded.p99_ms for r in rounds)
    sse_row = summarize(
        f"commit -> SSE client, {p['clients']} clients over {p['tenants']} tenants",
        latencies,
        errors=expected - arrived,
        note=f"{achieved:.0f} events/s committed; erp stream 1x{p['stream_threads']} gthread, "
        f"{stream_ms_per_frame:.2f} ms CPU per frame sent",
    )

    def get_row(label: str, runs: list[wrk.WrkResult], ceiling: bool = False) -> Any:
        median = sorted(runs, key=lambda r: r.p99_ms)[len(runs) // 2]
        row = summarize(
            label, [], ceiling=ceiling, note=f"wrk {p['get_clients']} connections; median round"
        )
        row.count, row.seconds, row.ops_per_s = median.requests, median.seconds, median.ops_per_s
        row.mean_ms, row.p50_ms, row.p95_ms = median.mean_ms, median.p50_ms, median.p95_ms
        row.p99_ms, row.errors = median.p99_ms, sum(r.errors for r in runs)
        return row

    idle_runs, loaded_runs = [r.idle for r in rounds], [r.loaded for r in rounds]
    rows = [
        sse_row,
        get_row("GET /api/v1/me beside the streams and their events", loaded_runs),
        get_row("GET /api/v1/me, no streams (reference)", idle_runs, ceiling=True),
    ]
    p99 = sse_row.p99_ms / 1000
    get_errors = sum(r.errors for r in idle_runs + loaded_runs)
    return Result(
        rows,
        [
            Ratio(
                "SSE p99 ÷ 250 ms",
                p99 / BOUND_S,
                f"commit -> client p99 with {p['clients']} clients connected / 250 ms",
                target=1.0,
            ),
            Ratio(
                "GET p99 loaded ÷ idle",
                loaded_p99 / idle_p99,
                "GET /api/v1/me p99 with the streams open and events flowing / without "
                "(medians of the rounds, which alternate)",
                target=GET_BOUND,
            ),
        ],
        [
            Check(
                "every event reached every client of its tenant",
                arrived == expected,
                f"{arrived} of {expected}",
            ),
            Check("no GET errors", not get_errors, f"{get_errors} errors"),
            Check("the pace was held", achieved >= 0.9 * p["rate"], f"{achieved:.0f} events/s"),
        ],
        {
            "sse_p50_s": sse_row.p50_ms / 1000,
            "sse_p99_s": p99,
            "get_p99_idle_ms": [r.p99_ms for r in idle_runs],
            "get_p99_loaded_ms": [r.p99_ms for r in loaded_runs],
            "achieved_rate": achieved,
            "stream_cpu_s": stream_cpu,
            "stream_cpu_ms_per_frame": stream_ms_per_frame,
            "shared_reads": "streams of one tenant at one cursor share one read",
        },
        [
            f"SSE p50 {sse_row.p50_ms:.0f} ms, p99 {sse_row.p99_ms:.0f} ms at "
            f"{achieved:.0f} events/s; GET p99 (median of {p['rounds']} rounds) "
            f"{idle_p99:.1f} -> {loaded_p99:.1f} ms; erp stream used {stream_cpu:.1f} CPU s "
            f"({stream_ms_per_frame:.2f} ms per frame)"
        ],
    )


SCENARIO = Scenario(
    name="inventory_stream",
    description="commit -> SSE client p99 with 200 clients connected, and the API's GET "
    "p99 beside them",
    run=run,
    defaults={
        "clients": 200,
        "tenants": 10,
        "rate": 20.0,
        "seconds": 8.0,
        "rounds": 3,
        "emitters": 2,
        "get_clients": 4,
        "stream_threads": 256,
        "drain_s": 30.0,
    },
    quick={"seconds": 3.0, "clients": 40, "rounds": 1},
    needs=("wrk",),
)
