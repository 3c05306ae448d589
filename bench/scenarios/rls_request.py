"""rls_request: what row-level security costs a whole request, not one query.

`GET /api/v1/ledger/accounts/{id}` (API key, the account and its balances) through
gunicorn, served twice from one scratch database:

- rls: `erp serve` as erp_app, as in production: RLS adds the tenant to every
  table a query reads;
- ceiling: the same app logged in as a BYPASSRLS role (`bench_bypass_<run>`, a
  member of erp_app for its grants) with `Settings.bench_rls_ceiling`, which adds
  `tenant_id = <tenant>` to every ORM read of a tenant table and makes the balance
  query filter by tenant by hand (bench/rls_ceiling.py; `erp serve` refuses such a
  login).

Two tenants hold accounts with the same ids (bench ids are derived from their
number) and different histories, so a query that forgot its tenant would answer
wrongly: both servers must answer every sampled account identically, with the
bench tenant's balance. wrk (`clients` connections) requests random accounts,
the two servers alternating in rounds, while the CPU time of the server's workers
and of its login's PostgreSQL backends is read from /proc (the database server
must run on this machine).

Ratios: CPU per request with RLS / without (the headline: on a saturated machine
time per request is CPU; and it is far steadier than a throughput on a shared
one); the PostgreSQL backends' CPU alone; and ceiling requests/s / rls requests/s
under wrk (time per request, noisy here). Target <= 1.05.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench import wrk
from bench.apps import provision, serve_default_threads, server_env, services
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import account_uuid, create_accounts, load_posting_history
from bench.scenarios.ledger_workers import posting_database, round_orders
from bench.servers import login_role, with_database
from bench.web import Server, cpu_seconds, get, gunicorn

TARGET = 1.05
BYPASS_ROLE = "bench_bypass"


def _accounts(p: dict[str, Any]) -> list[uuid.UUID]:
    return [account_uuid("asset", n) for n in range(p["assets"])] + [
        account_uuid("revenue", n) for n in range(p["revenues"])
    ]


def _other_tenant(ctx: Context, setup: Any) -> uuid.UUID:
    """A second tenant with the same account ids and a shorter history."""
    p = ctx.params
    with services(setup.settings) as erp_db:
        other, _ = provision(erp_db, "bench-rls-other")
        create_accounts(erp_db, other, "asset", p["assets"], ["asset"])
        create_accounts(erp_db, other, "revenue", p["revenues"], ["revenue"])
    load_posting_history(
        setup.db, other, p["history"] // 2, p["assets"], p["revenues"], p["history_days"]
    )
    return other


def run(ctx: Context) -> Result:
    p = ctx.params
    bypass = f"{BYPASS_ROLE}_{uuid.uuid4().hex[:8]}"
    with (
        login_role(ctx.servers, bypass, "BYPASSRLS") as password,
        posting_database(ctx, "rlsreq", key_scopes=["ledger:read"]) as setup,
    ):
        _other_tenant(ctx, setup)
        with psycopg.connect(setup.db.owner_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(setup.db.name), sql.Identifier(bypass)
                )
            )
            conn.execute(sql.SQL("GRANT erp_app TO {}").format(sql.Identifier(bypass)))
        bypass_url = with_database(ctx.servers.database_url, setup.db.name, bypass, password)
        settings = setup.settings.replace(log_level=p["log_level"])
        auth = {"Authorization": f"Bearer {setup.api_key}"}
        accounts = _accounts(p)
        paths = [f"/api/v1/ledger/accounts/{a}" for a in accounts]
        script = wrk.paths_script(paths, auth, seed=p["seed"])
        threads = p["threads_per_worker"]
        with (
            gunicorn(server_env(settings), workers=p["workers"], threads=threads) as rls,
            gunicorn(
                server_env(settings.replace(database_url=bypass_url)),
                workers=p["workers"],
                threads=threads,
                module="bench.rls_ceiling",
            ) as ceiling,
        ):
            servers = {"rls": rls, "ceiling": ceiling}
            sample = random.Random(p["seed"]).sample(paths, min(20, len(paths)))
            answers = {
                k: [_get_json(s.port, path, auth) for path in sample] for k, s in servers.items()
            }
            with psycopg.connect(setup.db.owner_url) as conn:
                expected = _expected_balances(conn, setup.tenant_id, sample)

            def load(name: str, seconds: float) -> wrk.WrkResult:
                return wrk.run(
                    servers[name].url + "/api/v1/ledger/accounts",
                    script,
                    connections=p["clients"],
                    threads=p["wrk_threads"],
                    duration_s=seconds,
                )

            for name in servers:
                load(name, p["warmup_s"])
            meters = {
                "rls": CpuMeter(rls, setup.db.owner_url, "erp_app"),
                "ceiling": CpuMeter(ceiling, setup.db.owner_url, bypass),
            }
            results = {name: wrk.WrkSeries() for name in servers}
            per_round = p["seconds"] / p["rounds"]
            rounds: list[dict[str, float]] = []
            for order in round_orders(["rls", "ceiling"], p["rounds"]):
                rates = {}
                for name in order:
                    with meters[name].measuring():
                        got = load(name, per_round)
                    meters[name].requests += got.requests
                    results[name].add(got)
                    rates[name] = round(got.ops_per_s, 1)
                rounds.append(rates)
                ctx.log(f"round: {rates}")
    rls_row = results["rls"].row("GET /ledger/accounts/{id} as erp_app (RLS)")
    ceiling_row = results["ceiling"].row(
        "the same, BYPASSRLS login + tenant filter in the queries", ceiling=True
    )
    errors = {k: v.errors for k, v in results.items()}
    got_balances = {k: [a["balance"]["posted"] for a in v] for k, v in answers.items()}
    rls_cpu, ceiling_cpu = meters["rls"], meters["ceiling"]
    # The ceiling's app adds its tenant filters in Python (about 0.1 ms a request): the
    # headline charges both sides the RLS app's CPU, so it measures PostgreSQL's side.
    with_rls = rls_cpu.app_ms + rls_cpu.pg_ms
    without = rls_cpu.app_ms + ceiling_cpu.pg_ms
    return Result(
        [rls_row, ceiling_row],
        [
            Ratio(
                "rls/ceiling CPU per request",
                with_rls / without,
                "CPU per GET /ledger/accounts/{id} (the API workers' + the PostgreSQL backends') "
                "served as erp_app (RLS) / the same with the backends' CPU of the BYPASSRLS "
                "login whose queries filter by tenant",
                target=TARGET,
                headline="rls request",
                figure=f"{with_rls:.3f} ms CPU/request",
                reference=f"{without:.3f} ms BYPASSRLS",
            ),
            Ratio(
                "rls/ceiling PostgreSQL CPU per request",
                rls_cpu.pg_ms / ceiling_cpu.pg_ms,
                "the PostgreSQL backends' CPU per request alone, erp_app / BYPASSRLS",
            ),
            Ratio(
                "rls/ceiling time per request (wrk)",
                ceiling_row.ops_per_s / rls_row.ops_per_s,
                "ceiling requests/s / rls requests/s under the same wrk load (noisy on a "
                "shared machine: see the rounds)",
                target=TARGET,
            ),
        ],
        [
            Check("no errors under load", not any(errors.values()), json.dumps(errors)),
            Check(
                "both servers answer the bench tenant's balances (not the other tenant's)",
                got_balances["rls"] == got_balances["ceiling"] == expected,
                f"sampled {len(sample)} accounts",
            ),
        ],
        {
            "bypass_role": bypass,
            "rounds": rounds,
            "cpu_ms_per_request": {k: m.as_dict() for k, m in meters.items()},
            **setup.facts(),
        },
        [
            f"ceiling: bench.rls_ceiling as {bypass} (BYPASSRLS, member of erp_app); "
            "a second tenant holds the same account ids",
            "CPU per request, API workers + PostgreSQL backends: "
            + "; ".join(f"{k} {m.app_ms:.3f} + {m.pg_ms:.3f} ms" for k, m in meters.items()),
            "rounds (req/s): "
            + "; ".join(f"rls {r['rls']}, ceiling {r['ceiling']}" for r in rounds),
        ],
    )


@dataclass
class CpuMeter:
    """CPU used during measured windows by a server's workers and by the PostgreSQL
    backends of its login (the server runs on this machine: /proc)."""

    server: Server
    owner_url: str
    login: str
    requests: int = 0
    app_s: float = 0.0
    pg_s: float = 0.0

    def _backends(self) -> list[int]:
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND usename = %s AND backend_type = 'client backend'",
                (self.login,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    @contextmanager
    def measuring(self) -> Iterator[None]:
        workers = self.server.workers()
        app = {pid: cpu_seconds(pid) for pid in workers}
        pg = {pid: cpu_seconds(pid) for pid in self._backends()}
        yield
        time.sleep(0.05)  # the requests in flight when wrk stopped end in the window
        self.app_s += sum(cpu_seconds(pid) - app.get(pid, 0.0) for pid in workers)
        self.pg_s += sum(cpu_seconds(pid) - pg.get(pid, 0.0) for pid in self._backends())

    @property
    def app_ms(self) -> float:
        return self.app_s / self.requests * 1000 if self.requests else float("nan")

    @property
    def pg_ms(self) -> float:
        return self.pg_s / self.requests * 1000 if self.requests else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"app": round(self.app_ms, 4), "postgresql": round(self.pg_ms, 4)}


def _get_json(port: int, path: str, headers: dict[str, str]) -> dict[str, Any]:
    status, body = get(port, path, headers)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
    doc: dict[str, Any] = json.loads(body)
    return doc


def _expected_balances(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, paths: list[str]
) -> list[int]:
    """The accounts' posted balances summed from the bench tenant's entries (the
    history is all posted, effective in the past)."""
    out = []
    for path in paths:
        account = uuid.UUID(path.rsplit("/", 1)[1])
        row = conn.execute(
            "SELECT coalesce(sum(amount), 0) FROM ledger.entries "
            "WHERE tenant_id = %s AND account_id = %s",
            (tenant, account),
        ).fetchone()
        assert row is not None
        out.append(int(row[0]))
    return out


SCENARIO = Scenario(
    name="rls_request",
    description="GET /ledger/accounts/{id} as erp_app vs a BYPASSRLS login with tenant filters",
    run=run,
    defaults={
        "workers": 2,
        "threads_per_worker": serve_default_threads(),
        "clients": 16,
        "wrk_threads": 2,
        "assets": 1000,
        "revenues": 4,
        "history": 200_000,
        "history_days": 30,
        # posting_database's PoolSpec wants a pool size; no pool runs here
        "threads": 1,
        "seconds": 40.0,
        "rounds": 8,
        "warmup_s": 2.0,
        "log_level": "INFO",
        "seed": 17,
    },
    quick={"seconds": 8.0, "rounds": 4, "warmup_s": 1.0, "history": 20_000},
    needs=("wrk",),
)
