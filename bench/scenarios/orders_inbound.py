"""orders_inbound: shop webhooks through `POST /hooks/v1/channels/{id}/orders`.

One tenant (default template), `skus` items stocked at MAIN, one `generic` channel.

- accept: signed webhooks accepted per second (the 202 path: the channel found by the
  definer, the Standard Webhooks signature checked, the raw body stored, the job
  enqueued) through gunicorn as `erp serve` runs it, driven by wrk over pre-signed
  requests (each its own webhook-id, signed when the script is made: wrk's Lua has no
  HMAC), no worker running (the queue is emptied after each round); beside the same
  row inserted by pgbench (-M prepared: BEGIN, the tenant pin, the INSERT, COMMIT),
  same run. Target: >= 0.2.
- end to end: `rate` webhooks/s for `e2e_seconds` (2-line orders, each its own
  external_id), `workers` `erp worker` processes turning them into orders; latency per
  message = the order's commit (processed_at, clock_timestamp() when the job settles the
  message) - the message stored (created_at), both on the database's clock, plus the
  client's own 202 round trip is shown apart. Target: p99 < 1 s at 100/s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench import wrk
from bench.apps import provision, serve_default_threads, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.inventory_moves_api import ID_PREFIX, _load_items, _pgbench
from bench.scenarios.ledger_post_api import _profile
from bench.scenarios.ledger_workers import pgbench_binary, round_orders
from bench.scenarios.webhooks_delivery import processes
from bench.servers import scratch_database
from bench.stats import Row, summarize
from bench.web import gunicorn

TARGET = 0.2
BOUND_S = 1.0


def _body(skus: int, external_id: str, rnd: Any) -> bytes:
    a = rnd.randrange(skus)
    b = (a + 1 + rnd.randrange(skus - 1)) % skus
    lines = [{"item_id": f"{ID_PREFIX}{k:012x}", "quantity": 1, "unit_price": 1500} for k in (a, b)]
    order = {
        "customer": {"name": "Buyer", "email": f"buyer{a % 100}@example.com"},
        "currency": "USD",
        "lines": lines,
        "external_id": external_id,
    }
    return json.dumps(order, separators=(",", ":")).encode()


def _signed(secret: str, body: bytes, msg_id: str, ts: int) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "Content-Type": "application/json",
    }


def _lua(path: str, secret: str, body: bytes, n: int, threads: int) -> str:
    """wrk cycles over `n` pre-signed (id, signature) pairs made for this run, one per
    request, thread t taking every threads-th from t (the same body each time)."""
    ts = int(time.time())
    entries = []
    for _ in range(n):
        msg_id = "msg_" + uuid.uuid4().hex
        sig = _signed(secret, body, msg_id, ts)["webhook-signature"]
        entries.append(f"{msg_id} {sig}")
    return (
        f"""
local data = {json.dumps(chr(10).join(entries))}
local body = {json.dumps(body.decode())}
local sigs = {{}}
local threads, n, i = 0, 0, 0
setup = function(thread) threads = threads + 1; thread:set("tid", threads) end
init = function(args)
  for id, sig in string.gmatch(data, "(%S+) (%S+)") do sigs[#sigs + 1] = {{id, sig}} end
  i = tid or 1; n = #sigs
end
request = function()
  local s = sigs[i]
  i = i + {threads}
  if i > n then i = (i % {threads}) + 1 end
  return wrk.format("POST", "{path}", {{
    ["Content-Type"] = "application/json", ["webhook-id"] = s[1],
    ["webhook-timestamp"] = "{ts}", ["webhook-signature"] = s[2]}}, body)
end
"""
        + wrk._DONE
    )


def _pgbench_script(tmp: Path, tenant: uuid.UUID, channel: str, body: bytes) -> list[Path]:
    pin = f"SELECT set_config('app.tenant_id', '{tenant}', true);\n"
    text = body.decode().replace("'", "''")
    insert = (
        "INSERT INTO orders.inbound_messages (id, channel_id, webhook_id, topic, body)"
        f" VALUES (gen_random_uuid(), '{channel}', 'pg_' || gen_random_uuid(), NULL,"
        f" '{text}');\n"
    )
    path = tmp / "inbound.sql"
    path.write_text(f"BEGIN;\n{pin}{insert}COMMIT;\n")
    return [path]


def _channel(erp_db: Any, tenant: uuid.UUID) -> tuple[str, str]:
    from erp.orders import services as orders
    from erp.orders.commands import NewChannel

    view = erp_db.unit_of_work(
        lambda s: orders.create_channel(s, NewChannel(name="Bench shop", kind="generic")),
        tenant=tenant,
    )
    return str(view.id), str(view.signing_secret)


def _count(owner_url: str, tenant: uuid.UUID, where: str = "true") -> int:
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        row = conn.execute(f"SELECT count(*) FROM orders.inbound_messages WHERE {where}").fetchone()
    return int(row[0]) if row else 0


def _empty_queue(settings: Any) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    from erp.jobs import JobQueue

    q = JobQueue()
    q.configure(settings.redis_url, settings.queue_prefix)
    Queue(f"{settings.queue_prefix}-orders", connection=q.redis, serializer=JSONSerializer).empty()
    # the drain flags of the jobs just dropped (else the next kicks would wait for them)
    flags = list(q.redis.scan_iter(f"{settings.queue_prefix}:orders:drain:*"))
    if flags:
        q.redis.delete(*flags)


def _set_aside(owner_url: str, tenant: uuid.UUID) -> None:
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "UPDATE orders.inbound_messages SET status = 'ignored', processed_at = now()"
            " WHERE status = 'received'"
        )


def _send_paced(
    url: str, path: str, secret: str, skus: int, rate: float, seconds: float, senders: int
) -> tuple[int, int, list[float]]:
    """(sent, refused, client round trips s): `rate` signed webhooks/s over `senders`
    keep-alive connections, each its own external_id."""
    import random

    parts = urlsplit(url)
    lock = threading.Lock()
    out: dict[str, Any] = {"sent": 0, "refused": 0, "rtt": []}
    start = time.perf_counter() + 0.2
    total = int(rate * seconds)

    def sender(k: int) -> None:
        rnd = random.Random(k)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        for i in range(k, total, senders):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = _body(skus, f"e2e-{i}", rnd)
            headers = _signed(secret, body, f"msg_e2e_{i}", int(time.time()))
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            with lock:
                out["sent"] += 1
                out["rtt"].append(time.perf_counter() - t0)
                if resp.status != 202:
                    out["refused"] += 1
        conn.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out["sent"], out["refused"], out["rtt"]


def _e2e_latencies(
    owner_url: str, tenant: uuid.UUID, timeout_s: float
) -> tuple[list[float], list[Any]]:
    """(stored -> order committed, seconds, per processed message; messages not processed)
    once none is left `received` (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _count(owner_url, tenant, "status = 'received' AND webhook_id LIKE 'msg_e2e_%'") == 0:
            break
        time.sleep(0.5)
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        rows = conn.execute(
            "SELECT status, extract(epoch FROM processed_at - created_at), error"
            " FROM orders.inbound_messages WHERE webhook_id LIKE 'msg\\_e2e\\_%'"
        ).fetchall()
    latencies = [float(r[1]) for r in rows if r[0] == "processed"]
    others = [(r[0], r[2]) for r in rows if r[0] != "processed"]
    return latencies, others


def run(ctx: Context) -> Result:
    p = ctx.params
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench is needed for the ceiling (PostgreSQL's client package)")
    per_round = p["seconds"] / p["rounds"]
    api = wrk.WrkSeries()
    ceiling: dict[str, Any] = {"n": 0, "seconds": 0.0, "failed": 0, "lat": []}
    with scratch_database(ctx.servers, "inb") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant, _key = provision(erp_db, "bench-inbound")
            _load_items(db.owner_url, tenant, p["skus"])
            channel, secret = _channel(erp_db, tenant)
        ctx.log(f"tenant {tenant}: {p['skus']:,} SKUs, channel {channel}")
        path = f"/hooks/v1/channels/{channel}/orders"
        import random

        body = _body(p["skus"], "accept-path", random.Random(p["seed"]))
        env = server_env(settings.replace(log_level=p["log_level"]))
        with (
            gunicorn(env, workers=p["workers"], threads=p["threads_per_worker"]) as server,
            tempfile.TemporaryDirectory(prefix="erp-bench-inb-") as tmp,
        ):
            scripts = _pgbench_script(Path(tmp), tenant, channel, body)

            def load(seconds: float) -> wrk.WrkResult:
                script = _lua(path, secret, body, p["signed"], p["wrk_threads"])
                return wrk.run(
                    server.url + path,
                    script,
                    connections=p["clients"],
                    threads=p["wrk_threads"],
                    duration_s=seconds,
                )

            before = _count(db.owner_url, tenant)
            warm = load(p["warmup_s"])
            _empty_queue(settings)
            stored_before = _count(db.owner_url, tenant, "webhook_id LIKE 'msg_%'")
            for order in round_orders(["api", "ceiling"], p["rounds"]):
                for name in order:
                    if name == "api":
                        got = load(per_round)
                        api.add(got)
                        rate = got.ops_per_s
                        _empty_queue(settings)
                    else:
                        n, secs, failed, lat, _cpu = _pgbench(
                            binary, db.app_url, scripts, p["clients"], p["pgbench_jobs"], per_round
                        )
                        ceiling["n"] += n
                        ceiling["seconds"] += secs
                        ceiling["failed"] += failed
                        ceiling["lat"].append(lat)
                        rate = n / secs
                    ctx.log(f"{name}: {rate:,.0f} webhooks/s")
            stored = _count(db.owner_url, tenant, "webhook_id LIKE 'msg_%'") - stored_before
            ctx.log(f"{before} before; {stored:,} stored by the hook in the measured rounds")
            prof = _profile(ctx, server, lambda: load(p["profile_s"]), p["profile_s"])
            _empty_queue(settings)
            # -- end to end: workers on, paced senders. The accept rounds' messages (one
            # body, thousands of ids) are set aside first: drained oldest first, they
            # would be a backlog ahead of every measured message.
            _set_aside(db.owner_url, tenant)
            commands = [["worker"]] * p["e2e_workers"]
            with processes(server_env(settings), commands):
                time.sleep(p["worker_start_s"])
                sent, refused, rtt = _send_paced(
                    server.url, path, secret, p["skus"], p["rate"], p["e2e_seconds"], p["senders"]
                )
                latencies, others = _e2e_latencies(db.owner_url, tenant, 60)
                unprocessed = len(others)
                if others:
                    ctx.log(f"{unprocessed} not processed, e.g. {others[0]}")
            log_tail = server.tail(5)
    c_rate = ceiling["n"] / ceiling["seconds"] if ceiling["seconds"] else float("nan")
    c_lat = sum(ceiling["lat"]) / len(ceiling["lat"]) if ceiling["lat"] else float("nan")
    nan = float("nan")
    e2e = summarize(
        f"webhook -> order, {p['rate']:g}/s for {p['e2e_seconds']:g} s, "
        f"{p['e2e_workers']} erp workers",
        latencies,
        errors=unprocessed + refused,
        note="message stored -> order committed (database clock)",
    )
    client = summarize("  the sender's 202 round trip", rtt, note="client clock")
    p99 = e2e.p99_ms / 1000
    return Result(
        [
            api.row(f"POST {path[:24]}..., signed, wrk {p['clients']} connections"),
            Row(
                f"INSERT orders.inbound_messages under pgbench, {p['clients']} clients",
                ceiling["n"],
                ceiling["seconds"],
                c_rate,
                c_lat,
                nan,
                nan,
                nan,
                ceiling["failed"],
                ceiling=True,
            ),
            e2e,
            client,
        ],
        [
            Ratio(
                "accept/ceiling",
                api.ops_per_s / c_rate,
                "signed webhooks accepted (202) per second through gunicorn / the same row "
                "inserted by pgbench (BEGIN, pin, INSERT, COMMIT), same run and server",
                target=TARGET,
                higher_is_worse=False,
                figure=f"{api.ops_per_s:,.0f} webhooks/s",
                reference=f"{c_rate:,.0f}/s pgbench",
            ),
            Ratio(
                "e2e p99 / bound",
                p99 / BOUND_S,
                f"webhook -> order p99 at {p['rate']:g}/s with {p['e2e_workers']} workers / 1 s",
                target=1.0,
                figure=f"p99 {p99 * 1000:,.0f} ms",
                reference="1 s",
            ),
        ],
        [
            Check("no errors on the 202 path", api.errors + warm.errors == 0, str(api.errors)),
            Check(
                "every request a new message (202, not a replay)",
                api.requests <= stored <= api.requests + p["clients"] * p["rounds"],
                f"{stored:,} stored / {api.requests:,} answered",
            ),
            Check(
                "pgbench transactions all committed", ceiling["failed"] == 0, str(ceiling["failed"])
            ),
            Check(
                "every e2e webhook became an order",
                unprocessed + refused == 0,
                f"{len(latencies):,} processed of {sent:,} sent",
            ),
        ],
        {"server_log_tail": log_tail, "profile": prof.as_dict()},
        [
            f"cores: {os.cpu_count()}; e2e workers: `erp worker` with its default threads",
            *prof.lines(_PROFILE_TITLE),
        ],
        summary=prof.lines(_PROFILE_TITLE),
    )


_PROFILE_TITLE = "CPU profile of one API worker under the 202 load (py-spy, GIL samples)"


SCENARIO = Scenario(
    name="orders_inbound",
    description="shop webhooks accepted/s vs pgbench inserts; webhook -> order p99 at 100/s",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "pgbench_jobs": 2,
        "skus": 1_000,
        "signed": 40_000,
        "seconds": 20.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "rate": 100.0,
        "e2e_seconds": 20.0,
        "e2e_workers": 2,
        "senders": 8,
        "worker_start_s": 4.0,
        "log_level": "INFO",
        "profile_s": 10.0,
        "seed": 17,
    },
    quick={
        "seconds": 6.0,
        "rounds": 2,
        "warmup_s": 1.0,
        "e2e_seconds": 8.0,
        "signed": 20_000,
        "profile_s": 3.0,
    },
    needs=("wrk",),
)
