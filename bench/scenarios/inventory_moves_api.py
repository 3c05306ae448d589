"""inventory_moves_api: stock moves per second through `POST /api/v1/inventory/moves`
over 10,000 SKUs, beside the same statements in raw SQL under pgbench, same run.

One tenant (default template: MAIN warehouse, the inventory ledger roles), `skus`
items each opened with a large receipt. Each move is a receipt (random quantity and
unit cost) or an issue (random quantity) of a random SKU at MAIN, half and half; both
post one ledger transaction (Dr inventory / Cr payables, Dr COGS / Cr inventory) and
write one stock.changed event. Two variants alternate in rounds (AB, BA...):

- api: wrk, `clients` keep-alive connections, gunicorn as `erp serve` runs it, an API
  key with inventory:write; the route is one-flight (BEGIN, pin, call, COMMIT in one
  message);
- ceiling: pgbench (-M prepared, as many clients) sending the same transaction as raw
  SQL: BEGIN; the tenant pin; `SELECT inventory.record_move(...)`; COMMIT.

Any response other than 201 fails the run.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from bench import wrk
from bench.apps import provision, serve_default_threads, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_workers import pgbench_binary, round_orders
from bench.servers import scratch_database
from bench.stats import Row
from bench.web import gunicorn

PATH = "/api/v1/inventory/moves"
TARGET = 0.2
#: Item n's id: the same in the Lua script, the pgbench script and the loader.
ID_PREFIX = "00000000-0000-4000-8000-"
OPENING = 1_000_000_000


def item_uuid(n: int) -> str:
    return f"{ID_PREFIX}{n:012x}"


def _load_items(owner_url: str, tenant: uuid.UUID, skus: int) -> str:
    """`skus` items with a large opening receipt each (through inventory.record_move, so
    levels, values and the ledger agree); returns MAIN's id."""
    with psycopg.connect(owner_url) as conn:
        conn.execute("SET ROLE erp_app")
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
        assert row is not None
        main = str(row[0])
        conn.execute(
            "INSERT INTO inventory.items (id, sku, name, unit)"
            " SELECT (%s || lpad(to_hex(n), 12, '0'))::uuid, 'SKU-' || n, 'Item ' || n, 'each'"
            "   FROM generate_series(0, %s - 1) AS n",
            (ID_PREFIX, skus),
        )
        conn.execute(
            "SELECT inventory.record_move(gen_random_uuid(), 'receipt', i.id, %s, NULL, %s,"
            " 100, NULL, 'opening', NULL, NULL, gen_random_uuid(), gen_random_uuid())"
            "  FROM inventory.items i",
            (OPENING, main),
        )
        conn.commit()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return main


def _lua(api_key: str, skus: int, main: str, seed: int) -> str:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return (
        f"""
local base = {wrk._lua_headers(headers)}
local n = 0
setup = function(thread) n = n + 1; thread:set("tid", n) end
init = function(args) math.randomseed({seed} * 1000 + (tid or 0)) end
request = function()
  local item = string.format("{ID_PREFIX}%012x", math.random(0, {skus - 1}))
  local body
  if math.random(2) == 1 then
    body = '{{"kind":"receipt","item_id":"' .. item .. '","quantity":' .. math.random(1, 10) ..
      ',"to_location_id":"{main}","unit_cost":' .. math.random(0, 999) .. '}}'
  else
    body = '{{"kind":"issue","item_id":"' .. item .. '","quantity":' .. math.random(1, 10) ..
      ',"from_location_id":"{main}"}}'
  end
  return wrk.format("POST", "{PATH}", base, body)
end
"""
        + wrk._DONE
    )


def _pgbench_scripts(tmp: Path, tenant: uuid.UUID, skus: int, main: str) -> list[Path]:
    """One script (pgbench -M prepared mixes badly with several): a receipt or an issue."""
    pin = f"SELECT set_config('app.tenant_id', '{tenant}', true);\n"
    item = f"('{ID_PREFIX}' || lpad(to_hex(:n::int), 12, '0'))::uuid"
    head = (
        f"\\set n random(0, {skus - 1})\n\\set q random(1, 10)\n\\set c random(0, 999)\n"
        "\\set r random(0, 1)\n"
    )
    move = (
        f"{head}BEGIN;\n{pin}SELECT inventory.record_move(gen_random_uuid(),"
        f" CASE WHEN :r = 1 THEN 'receipt' ELSE 'issue' END, {item}, :q::bigint,"
        f" CASE WHEN :r = 0 THEN '{main}'::uuid END, CASE WHEN :r = 1 THEN '{main}'::uuid END,"
        f" CASE WHEN :r = 1 THEN :c::bigint END, NULL, NULL, NULL, NULL, gen_random_uuid(),"
        f" gen_random_uuid());\nCOMMIT;\n"
    )
    path = tmp / "move.sql"
    path.write_text(move)
    return [path]


_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_LAT = re.compile(r"latency average = ([0-9.]+) ms")


def _pgbench(
    binary: str, url: str, scripts: list[Path], clients: int, jobs: int, seconds: float
) -> tuple[int, float, int, float, float]:
    """(transactions, seconds, failed, mean latency ms, client cpu s)."""
    args = [binary, "-n", "-M", "prepared", "-c", str(clients), "-j", str(jobs)]
    args += ["-T", str(max(1, round(seconds)))]
    for s in scripts:
        args += ["-f", str(s)]
    args.append(url)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout + proc.stderr
    processed, tps = _PROCESSED.search(out), _TPS.search(out)
    if proc.returncode != 0 or processed is None or tps is None:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{out[-3000:]}")
    failed, lat = _FAILED.search(out), _LAT.search(out)
    n = int(processed.group(1))
    rate = float(tps.group(1))
    return (
        n,
        n / rate if rate else seconds,
        int(failed.group(1)) if failed else 0,
        float(lat.group(1)) if lat else float("nan"),
        (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
    )


def run(ctx: Context) -> Result:
    p = ctx.params
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench is needed for the ceiling (PostgreSQL's client package)")
    per_round = p["seconds"] / p["rounds"]
    api = wrk.WrkSeries()
    ceiling = {"n": 0, "seconds": 0.0, "failed": 0, "lat": [], "cpu": 0.0}
    with scratch_database(ctx.servers, "inv") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant, key = provision(
                erp_db, "bench-inventory", key_scopes=["inventory:read", "inventory:write"]
            )
        main = _load_items(db.owner_url, tenant, p["skus"])
        ctx.log(f"tenant {tenant}: {p['skus']:,} SKUs stocked at MAIN {main}")
        script = _lua(key, p["skus"], main, p["seed"])
        env = server_env(settings.replace(log_level=p["log_level"]))
        with (
            gunicorn(env, workers=p["workers"], threads=p["threads_per_worker"]) as server,
            tempfile.TemporaryDirectory(prefix="erp-bench-inv-") as tmp,
        ):
            scripts = _pgbench_scripts(Path(tmp), tenant, p["skus"], main)

            def load(seconds: float) -> wrk.WrkResult:
                return wrk.run(
                    server.url + PATH,
                    script,
                    connections=p["clients"],
                    threads=p["wrk_threads"],
                    duration_s=seconds,
                )

            warm = load(p["warmup_s"])
            for order in round_orders(["api", "ceiling"], p["rounds"]):
                for name in order:
                    if name == "api":
                        got = load(per_round)
                        api.add(got)
                        rate = got.ops_per_s
                    else:
                        n, secs, failed, lat, cpu = _pgbench(
                            binary,
                            db.app_url,
                            scripts,
                            p["clients"],
                            p["pgbench_jobs"],
                            per_round,
                        )
                        ceiling["n"] += n
                        ceiling["seconds"] += secs
                        ceiling["failed"] += failed
                        ceiling["lat"].append(lat)
                        ceiling["cpu"] += cpu
                        rate = n / secs
                    ctx.log(f"{name}: {rate:,.0f} moves/s")
            log_tail = server.tail(5)
        with psycopg.connect(db.owner_url) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            agreed = conn.execute(
                "SELECT (SELECT sum(value) FROM inventory.items) = (SELECT sum(e.amount)"
                " FROM ledger.entries e JOIN ledger.accounts a ON a.id = e.account_id"
                " WHERE a.role = 'inventory')"
            ).fetchone()
    c_rate = ceiling["n"] / ceiling["seconds"] if ceiling["seconds"] else float("nan")
    lat = sum(ceiling["lat"]) / len(ceiling["lat"]) if ceiling["lat"] else float("nan")
    nan = float("nan")
    rows = [
        api.row(f"POST {PATH}, wrk {p['clients']} connections, {p['skus']:,} SKUs"),
        Row(
            f"inventory.record_move under pgbench, {p['clients']} clients",
            ceiling["n"],
            ceiling["seconds"],
            c_rate,
            lat,
            nan,
            nan,
            nan,
            ceiling["failed"],
            ceiling=True,
        ),
    ]
    errors = api.errors + warm.errors
    return Result(
        rows,
        [
            Ratio(
                "api/ceiling",
                api.ops_per_s / c_rate,
                "stock moves per second through POST /api/v1/inventory/moves (gunicorn, API "
                "key, wrk) / the same transaction as raw SQL (BEGIN, pin, record_move, COMMIT) "
                "under pgbench, same run and server",
                target=TARGET,
                higher_is_worse=False,
                figure=f"{api.ops_per_s:,.0f} moves/s",
                reference=f"{c_rate:,.0f}/s pgbench",
            )
        ],
        [
            Check("no errors under load (every POST answered 201)", errors == 0, str(errors)),
            Check(
                "pgbench transactions all committed", ceiling["failed"] == 0, str(ceiling["failed"])
            ),
            Check(
                "item values equal the inventory account's entries",
                agreed is not None and bool(agreed[0]),
                "",
            ),
        ],
        {
            "client_cores_used": {
                "wrk": round(api.client_cores, 2),
                "pgbench": round(ceiling["cpu"] / ceiling["seconds"], 2)
                if ceiling["seconds"]
                else None,
            },
            "server_log_tail": log_tail,
        },
        [
            f"ceiling: pgbench -M prepared -c {p['clients']} -j {p['pgbench_jobs']}, receipts "
            f"and issues half and half; cores: {os.cpu_count()}"
        ],
    )


SCENARIO = Scenario(
    name="inventory_moves_api",
    description="stock moves/s through the API (wrk) vs the same SQL under pgbench",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "pgbench_jobs": 2,
        "skus": 10_000,
        "seconds": 30.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "log_level": "INFO",
        "seed": 13,
    },
    quick={"seconds": 6.0, "rounds": 2, "warmup_s": 1.0, "skus": 1_000},
    needs=("wrk",),
)
