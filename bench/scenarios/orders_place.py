"""orders_place: orders placed per second through `POST /api/v1/orders` (2-line orders
over 1,000 SKUs with ample stock), beside the same transaction's statements run by
pgbench, same run.

One tenant (default template: MAIN warehouse, the order roles in USD), `skus` items
each opened with a large receipt, as inventory_moves_api loads them. Each order has two
lines of two different random SKUs (quantity 1-3, a random unit price, no tax code),
a customer drawn from `customers` emails (so most orders find their customer and some
make one), no channel, no external id: the placement reserves both lines at MAIN,
writes the order, its lines, two reservations and the `order.created` event, and the
commit emits one `stock.changed` per level. Two variants alternate in rounds:

- api: wrk, `clients` keep-alive connections, gunicorn as `erp serve` runs it, an API
  key with orders:write; the route is one-flight (BEGIN, pin, call, COMMIT in one
  message);
- ceiling: pgbench (-M prepared, as many clients) sending the same transaction as raw
  SQL: BEGIN; the tenant pin; `SELECT orders.place_order(...)`; COMMIT.

Any response other than 201 fails the run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench import wrk
from bench.apps import provision, serve_default_threads, server_env, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.inventory_moves_api import ID_PREFIX, _load_items, _pgbench
from bench.scenarios.ledger_workers import pgbench_binary, round_orders
from bench.servers import scratch_database
from bench.stats import Row
from bench.web import gunicorn

PATH = "/api/v1/orders"
TARGET = 0.2


def _lua(api_key: str, skus: int, customers: int, seed: int) -> str:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return (
        f"""
local base = {wrk._lua_headers(headers)}
local n = 0
setup = function(thread) n = n + 1; thread:set("tid", n) end
init = function(args) math.randomseed({seed} * 1000 + (tid or 0)) end
local function line(k)
  return '{{"item_id":"' .. string.format("{ID_PREFIX}%012x", k) .. '","quantity":' ..
    math.random(1, 3) .. ',"unit_price":' .. math.random(100, 9999) .. '}}'
end
request = function()
  local a = math.random(0, {skus - 1})
  local b = (a + math.random(1, {skus - 1})) % {skus}
  local c = math.random(0, {customers - 1})
  local body = '{{"customer":{{"name":"Buyer ' .. c .. '","email":"buyer' .. c ..
    '@example.com"}},"currency":"USD","lines":[' .. line(a) .. ',' .. line(b) .. ']}}'
  return wrk.format("POST", "{PATH}", base, body)
end
"""
        + wrk._DONE
    )


def _pgbench_script(tmp: Path, tenant: uuid.UUID, skus: int, customers: int) -> list[Path]:
    """The service's call as pgbench sends it: the same function, the same arguments'
    shapes (ids made by the database instead of Python)."""
    pin = f"SELECT set_config('app.tenant_id', '{tenant}', true);\n"

    def item(var: str) -> str:
        return f"('{ID_PREFIX}' || lpad(to_hex(:{var}::int), 12, '0'))::uuid"

    head = (
        f"\\set a random(0, {skus - 1})\n\\set d random(1, {skus - 1})\n"
        f"\\set b (:a + :d) % {skus}\n\\set c random(0, {customers - 1})\n"
        "\\set q1 random(1, 3)\n\\set q2 random(1, 3)\n"
        "\\set p1 random(100, 9999)\n\\set p2 random(100, 9999)\n"
    )
    call = (
        "SELECT created FROM orders.place_order(gen_random_uuid(),"
        " ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[gen_random_uuid(),"
        " gen_random_uuid()], gen_random_uuid(), 'Buyer ' || :c, 'buyer' || :c ||"
        " '@example.com', 'USD', NULL, NULL, NULL, NULL, '{}'::jsonb,"
        f" ARRAY[{item('a')}, {item('b')}], '{{NULL,NULL}}'::text[],"
        " ARRAY[:q1, :q2]::bigint[], ARRAY[:p1, :p2]::bigint[], '{0,0}'::bigint[],"
        " '{NULL,NULL}'::text[], '{NULL,NULL}'::bigint[], NULL, NULL, NULL);\n"
    )
    path = tmp / "place.sql"
    path.write_text(f"{head}BEGIN;\n{pin}{call}COMMIT;\n")
    return [path]


def _consistent(owner_url: str, tenant: uuid.UUID) -> tuple[int, bool]:
    """(orders placed, whether every line's units are reserved and the levels' reserved
    equals the reservations held)."""
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orders.orders),"
            " (SELECT coalesce(sum(quantity), 0) FROM orders.order_lines)"
            "   = (SELECT coalesce(sum(quantity), 0) FROM inventory.reservations)"
            " AND (SELECT coalesce(sum(reserved), 0) FROM inventory.stock_levels)"
            "   = (SELECT coalesce(sum(quantity), 0) FROM inventory.reservations)"
        ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def run(ctx: Context) -> Result:
    p = ctx.params
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench is needed for the ceiling (PostgreSQL's client package)")
    per_round = p["seconds"] / p["rounds"]
    api = wrk.WrkSeries()
    ceiling: dict[str, Any] = {"n": 0, "seconds": 0.0, "failed": 0, "lat": [], "cpu": 0.0}
    with scratch_database(ctx.servers, "ord") as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant, key = provision(
                erp_db, "bench-orders", key_scopes=["orders:read", "orders:write"]
            )
        _load_items(db.owner_url, tenant, p["skus"])
        ctx.log(f"tenant {tenant}: {p['skus']:,} SKUs stocked at MAIN")
        script = _lua(key, p["skus"], p["customers"], p["seed"])
        env = server_env(settings.replace(log_level=p["log_level"]))
        with (
            gunicorn(env, workers=p["workers"], threads=p["threads_per_worker"]) as server,
            tempfile.TemporaryDirectory(prefix="erp-bench-ord-") as tmp,
        ):
            scripts = _pgbench_script(Path(tmp), tenant, p["skus"], p["customers"])

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
                            binary, db.app_url, scripts, p["clients"], p["pgbench_jobs"], per_round
                        )
                        ceiling["n"] += n
                        ceiling["seconds"] += secs
                        ceiling["failed"] += failed
                        ceiling["lat"].append(lat)
                        ceiling["cpu"] += cpu
                        rate = n / secs
                    ctx.log(f"{name}: {rate:,.0f} orders/s")
            log_tail = server.tail(5)
        placed, consistent = _consistent(db.owner_url, tenant)
    c_rate = ceiling["n"] / ceiling["seconds"] if ceiling["seconds"] else float("nan")
    lat = sum(ceiling["lat"]) / len(ceiling["lat"]) if ceiling["lat"] else float("nan")
    nan = float("nan")
    rows = [
        api.row(f"POST {PATH}, 2 lines, wrk {p['clients']} connections, {p['skus']:,} SKUs"),
        Row(
            f"orders.place_order under pgbench, {p['clients']} clients",
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
                "2-line orders placed per second through POST /api/v1/orders (gunicorn, API "
                "key, wrk) / the same transaction as raw SQL (BEGIN, pin, "
                "orders.place_order, COMMIT) under pgbench, same run and server",
                target=TARGET,
                higher_is_worse=False,
                figure=f"{api.ops_per_s:,.0f} orders/s",
                reference=f"{c_rate:,.0f}/s pgbench",
            )
        ],
        [
            Check("no errors under load (every POST answered 201)", errors == 0, str(errors)),
            Check(
                "pgbench transactions all committed", ceiling["failed"] == 0, str(ceiling["failed"])
            ),
            Check(
                "every line reserved; levels' reserved = reservations held",
                consistent,
                f"{placed:,} orders",
            ),
        ],
        {
            "client_cores_used": {
                "wrk": round(api.client_cores, 2),
                "pgbench": round(ceiling["cpu"] / ceiling["seconds"], 2)
                if ceiling["seconds"]
                else None,
            },
            "orders_placed": placed,
            "server_log_tail": log_tail,
        },
        [
            f"ceiling: pgbench -M prepared -c {p['clients']} -j {p['pgbench_jobs']}, the "
            f"same 2-line orders over {p['skus']:,} SKUs; cores: {os.cpu_count()}"
        ],
    )


SCENARIO = Scenario(
    name="orders_place",
    description="orders placed/s through the API (wrk) vs the same SQL under pgbench",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "pgbench_jobs": 2,
        "skus": 1_000,
        "customers": 1_000,
        "seconds": 30.0,
        "rounds": 2,
        "warmup_s": 2.0,
        "log_level": "INFO",
        "seed": 17,
    },
    quick={"seconds": 6.0, "rounds": 2, "warmup_s": 1.0},
    needs=("wrk",),
)
