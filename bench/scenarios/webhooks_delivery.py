"""webhooks_delivery: signed webhook deliveries per second to a local receiver.

A tenant with `endpoints` endpoints (every event type) at one threaded HTTP
receiver on 127.0.0.1 (in this process, answering 200 at once). `events` events are
committed to the outbox (`erp.webhooks.services.emit`, `batch` per transaction), so
`events x endpoints` messages are due; then `workers` `erp worker` processes (each
running `threads` jobs at once, as in production; `threads` 0: RQ's forking worker)
deliver them while this process runs the
dispatcher's sweep every `sweep_s` (in production `erp scheduler` runs it every 2 s).
The figure is messages delivered per second, from the first sweep until the receiver
has every message, and each message's latency from its event's commit.

The ceiling, same run, same receiver and the same signed bodies: one thread of this
process POSTing them back to back with `erp.webhooks.sender.post` (the HTTP floor of
a delivery, no database, no queue). The ratio says how much of the bare HTTP rate
the whole path (fan-out, claims, leases, attempt rows, RQ jobs) keeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.apps import provision, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.servers import ROOT, scratch_database
from bench.stats import summarize


class Receiver:
    """Records when each (webhook-id, path) first arrived; with `slow_s`, paths under
    /slow answer only after that many seconds (a slow endpoint beside the others)."""

    def __init__(self, slow_s: float = 0.0) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self.total = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.perf_counter()
                key = (self.headers.get("webhook-id", ""), self.path)
                with receiver.lock:
                    receiver.total += 1
                    receiver.first.setdefault(key, now)
                if slow_s and self.path.startswith("/slow"):
                    time.sleep(slow_s)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for_workers(n: int, timeout_s: float = 60.0) -> None:
    """Until `n` RQ workers listen on the webhooks queue (their start-up is not timed)."""
    from rq import Worker

    from erp.extensions import queue

    deadline = time.perf_counter() + timeout_s
    while Worker.count(queue=queue.queue("webhooks")) < n:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{n} erp workers did not start in {timeout_s:.0f} s")
        time.sleep(0.1)


@contextmanager
def processes(env: dict[str, str], commands: list[list[str]]) -> Iterator[None]:
    """`python -m erp.cli <command>` for each command, terminated on the way out."""
    child_env = {**os.environ, **env, "LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "erp.cli", *cmd],
            env=child_env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for cmd in commands
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def worker_command(p: dict[str, Any]) -> list[str]:
    """`erp worker` with the scenario's `threads` (0: RQ's forking worker)."""
    return ["worker", "--threads", str(p["threads"])]


def worker_model(p: dict[str, Any]) -> str:
    if p["threads"] == 0:
        return f"{p['workers']} forking erp workers (a work horse per job)"
    return f"{p['workers']} erp workers x {p['threads']} threads"


def _emit(erp_db: Any, tenant: uuid.UUID, events: int, batch: int) -> dict[str, float]:
    """Commit `events` events in transactions of `batch`; each event id -> commit time."""
    from erp.webhooks import services as webhooks

    committed: dict[str, float] = {}
    for start in range(0, events, batch):
        n = min(batch, events - start)

        def work(s: Any, n: int = n, start: int = start) -> list[uuid.UUID]:
            return [
                webhooks.emit(
                    s,
                    "ledger.transaction.posted",
                    {"id": str(uuid.uuid4()), "description": f"bench {start + i}", "entries": []},
                )
                for i in range(n)
            ]

        ids = erp_db.unit_of_work(work, tenant=tenant)
        now = time.perf_counter()
        committed.update({str(i): now for i in ids})
    return committed


def _ceiling(url: str, count: int) -> list[float]:
    """Back-to-back signed POSTs from one thread: the HTTP floor of a delivery."""
    from erp.webhooks import delivery, sender, signing

    secret = signing.new_secret()
    body = delivery.body_of("ledger.transaction.posted", _now(), {"id": "x", "entries": []})
    latencies = []
    for _ in range(count):
        msg_id = str(uuid.uuid4())
        started = time.perf_counter()
        headers = signing.headers(msg_id, int(time.time()), body, [secret])
        outcome = sender.post(url + "/ceiling", body, headers, ("127.0.0.1",))
        if not outcome.succeeded:
            raise RuntimeError(f"the ceiling's POST failed: {outcome}")
        latencies.append(time.perf_counter() - started)
    return latencies


def _now() -> Any:  # the one event timestamp of the ceiling's body
    from datetime import UTC, datetime

    return datetime.now(UTC)


def run(ctx: Context) -> Result:
    from erp.webhooks import dispatcher
    from erp.webhooks import services as webhooks
    from erp.webhooks.commands import NewEndpoint

    p = ctx.params
    receiver = Receiver()
    expected = p["events"] * p["endpoints"]
    try:
        with scratch_database(ctx.servers, "webhooks") as db:
            settings = settings_for(db, ctx.servers.redis_url)
            with services(settings.replace(db_pool_size=4)) as erp_db:
                tenant, _ = provision(erp_db, f"bench-hooks-{uuid.uuid4().hex[:6]}")
                for i in range(p["endpoints"]):
                    erp_db.unit_of_work(
                        lambda s, i=i: webhooks.create_endpoint(
                            s, NewEndpoint(url=f"{receiver.url}/e{i}")
                        ),
                        tenant=tenant,
                    )
                ctx.log(f"{p['events']} events x {p['endpoints']} endpoints")
                committed = _emit(erp_db, tenant, p["events"], p["batch"])
                with processes(server_env(settings), [worker_command(p)] * p["workers"]):
                    _wait_for_workers(p["workers"])
                    started = time.perf_counter()
                    deadline = started + p["timeout_s"]
                    while len(receiver.first) < expected and time.perf_counter() < deadline:
                        dispatcher.sweep()
                        time.sleep(p["sweep_s"])
                    wall = time.perf_counter() - started
                ceiling = _ceiling(receiver.url, min(expected, p["ceiling_posts"]))
    finally:
        receiver.close()
    delivered = {k: v for k, v in receiver.first.items() if k[1] != "/ceiling"}
    latencies = [at - committed[msg_id] for (msg_id, _path), at in delivered.items()]
    duplicates = receiver.total - len(receiver.first)
    row = summarize(
        f"deliveries, {worker_model(p)}, <= 50 per job",
        latencies,
        wall_s=wall,
        errors=expected - len(delivered),
        note="latency: event commit -> first arrival (includes the backlog's wait)",
    )
    bare = summarize("bare signed POSTs, one thread, no database", ceiling, ceiling=True)
    return Result(
        [row, bare],
        [
            Ratio(
                "deliveries/s ÷ bare POSTs/s",
                row.ops_per_s / bare.ops_per_s,
                "messages delivered per second by the whole path (sweep, fan-out, RQ jobs, "
                "claims, attempt rows) / signed POSTs per second from one bare thread to the "
                "same receiver",
                higher_is_worse=False,
            )
        ],
        [
            Check(
                "every message delivered",
                len(delivered) == expected,
                f"{len(delivered)} of {expected}",
            ),
            Check("no message delivered twice", duplicates == 0, f"{duplicates} repeats"),
        ],
        {"deliveries_per_s": row.ops_per_s, "wall_s": wall},
        [
            f"{expected} messages in {wall:.2f} s: {row.ops_per_s:.0f} deliveries/s "
            f"with {worker_model(p)}; sweep every {p['sweep_s']} s"
        ],
    )


SCENARIO = Scenario(
    name="webhooks_delivery",
    description="signed webhook deliveries/s to a local receiver vs bare POSTs/s",
    run=run,
    defaults={
        "events": 2000,
        "endpoints": 4,
        "batch": 100,
        "workers": 2,
        # Jobs each `erp worker` runs at once in threads; 0: RQ's forking worker.
        "threads": 16,
        "sweep_s": 0.2,
        "timeout_s": 300.0,
        "ceiling_posts": 4000,
    },
    quick={"events": 200, "endpoints": 2, "ceiling_posts": 400},
)
