"""inventory_hot_sku: 64 buyers reserve one hot SKU, ours beside the seed's pattern.

One tenant (default template), one item at the default location. `processes` spawned
processes x `threads` threads (64 buyers by default), each thread its own pooled
connection and each reservation of one unit its own committed transaction:

- `ours`: `erp.inventory.services.reserve` in `db.unit_of_work(..., one_flight=True)`:
  BEGIN, the tenant pin, `inventory.reserve(...)` (the item lock, one conditional UPDATE
  of the level, the reservation row, the level's change for stock.changed) and COMMIT
  as one message;
- `seed`: the seed's pattern through SQLAlchemy, one transaction: `SELECT on_hand,
  reserved ... FOR UPDATE` of the level, the check in Python, `UPDATE` of the level,
  the same reservation row and the same `inventory.note_change` call, COMMIT.

Both write the same rows under the same RLS and commit-time event trigger. They
alternate in rounds (ABBA), every thread starting at one instant, `warmup_s`
unrecorded, then every reservation completing in the window counted. The hot item
holds far more than a run can reserve, so no window runs short. Ratio ours/seed in
reservations per second: the issue's target is >= 1.5.

Then the last units, once per variant: a fresh item with `last_units` on hand and every
buyer reserving one unit until refused. Oversold = units granted - units on hand (as the
buyers counted them); the levels read afterwards must also show reserved <= on_hand and
reserved = the sum of the held reservations. Ours must oversell 0.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.apps import provision, services, settings_for
from bench.core import Check, Context, Ratio, Result, Scenario
from bench.scenarios.ledger_data import WaitSampler, loadavg
from bench.scenarios.ledger_workers import Measurement, round_orders
from bench.servers import ScratchDatabase, scratch_database

TARGET = 1.5
HOT_STOCK = 10**12
VARIANTS = ("ours", "seed")


@dataclass(frozen=True)
class Spec:
    app_url: str
    tenant_id: str
    location_id: str
    threads: int


class Short(Exception):
    """The seed's pattern found too little stock (its own check, in Python)."""


# -- the child process: one kind of buyer per call ------------------------------------


class _Buyers:
    def __init__(self, spec: Spec) -> None:
        from erp.config import Settings
        from erp.extensions import db

        settings = Settings(
            database_url=spec.app_url,
            db_pool_size=spec.threads,
            db_max_overflow=0,
            log_level="WARNING",
        )
        db.configure(settings)
        self.db = db
        self.tenant = uuid.UUID(spec.tenant_id)
        self.location = uuid.UUID(spec.location_id)

    def ours(self, item: uuid.UUID) -> None:
        from erp.inventory import services

        cmd = services.Reserve([services.ReserveLine(item, self.location, 1)])
        self.db.unit_of_work(
            lambda s: services.reserve(s, cmd), tenant=self.tenant, one_flight=True
        )

    def seed(self, item: uuid.UUID) -> None:
        from sqlalchemy import text

        level = {"item": item, "loc": self.location}

        def work(s: Any) -> None:
            row = s.execute(
                text(
                    "SELECT on_hand, reserved FROM inventory.stock_levels"
                    " WHERE item_id = :item AND location_id = :loc FOR UPDATE"
                ),
                level,
            ).one_or_none()
            if row is None or row.on_hand - row.reserved < 1:
                raise Short
            s.execute(
                text(
                    "UPDATE inventory.stock_levels SET reserved = reserved + 1,"
                    " updated_at = now() WHERE item_id = :item AND location_id = :loc"
                ),
                level,
            )
            rid = uuid.uuid4()
            s.execute(
                text(
                    "INSERT INTO inventory.reservations (id, item_id, location_id, quantity)"
                    " VALUES (:id, :item, :loc, 1)"
                ),
                {**level, "id": rid},
            )
            s.execute(
                text("SELECT inventory.note_change(:item, :loc, 0, 1, 'reservation', :id)"),
                {**level, "id": rid},
            )

        self.db.unit_of_work(work, tenant=self.tenant)

    def close(self) -> None:
        self.db.dispose()


def _is_short(exc: BaseException) -> bool:
    return isinstance(exc, Short) or getattr(exc, "slug", "") == "insufficient-stock"


def _window(buyers: _Buyers, cmd: tuple[Any, ...], threads: int) -> Measurement:
    """("run", variant, item, start_at, warmup_s, duration_s): buy until the window ends;
    ("drain", variant, item, start_at): buy until refused; `posted` = units granted;
    ("prime", variant, item, start_at): one purchase per thread, each connection's first
    of its kind (plans, caches), unrecorded."""
    kind, variant, item, start_at = cmd[:4]
    buy = getattr(buyers, variant)
    drain = kind in ("drain", "prime")
    record_from = start_at + (0.0 if drain else cmd[4])
    end = record_from + (0.0 if drain else cmd[5])
    lock = threading.Lock()
    total = Measurement(seconds=0.0 if drain else cmd[5])

    def thread_main() -> None:
        mine = Measurement()
        time.sleep(max(0.0, start_at - time.time()))
        while drain or time.time() < end:
            t0 = time.perf_counter()
            try:
                buy(item)
            except Exception as exc:
                if drain and _is_short(exc):
                    break
                mine.errors += 1
                if len(mine.error_samples) < 3:
                    mine.error_samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                if drain and mine.errors > 100:
                    break  # a drain that cannot finish: the errors are the finding
                continue
            mine.posted += 1
            if kind == "prime":
                break
            if drain or record_from <= time.time() <= end:
                mine.latencies_s.append(time.perf_counter() - t0)
        with lock:
            total.add(mine)

    workers = [threading.Thread(target=thread_main) for _ in range(threads)]
    cpu = time.process_time()
    for th in workers:
        th.start()
    for th in workers:
        th.join()
    total.cpu_s = time.process_time() - cpu
    return total


def _child(spec: Spec, index: int, commands: Any, results: Any) -> None:
    try:
        buyers = _Buyers(spec)
    except BaseException:
        results.put(("failed", index, traceback.format_exc()))
        return
    results.put(("ready", index, None))
    try:
        while True:
            cmd = commands.get()
            if cmd[0] == "stop":
                return
            try:
                results.put(("done", index, _window(buyers, cmd, spec.threads)))
            except BaseException:
                results.put(("failed", index, traceback.format_exc()))
    finally:
        buyers.close()


# -- the parent side -------------------------------------------------------------------


class BuyerPool:
    """`processes` spawned processes x `spec.threads` threads, one connection each."""

    def __init__(self, spec: Spec, processes: int, ready_s: float = 180) -> None:
        ctx = mp.get_context("spawn")
        self.spec, self.processes = spec, processes
        self._results: Any = ctx.Queue()
        self._commands: list[Any] = [ctx.Queue() for _ in range(processes)]
        self._procs = [
            ctx.Process(
                target=_child,
                args=(spec, i, self._commands[i], self._results),
                name=f"bench-buyers-{i}",
                daemon=True,
            )
            for i in range(processes)
        ]
        for p in self._procs:
            p.start()
        try:
            self._collect(ready_s)
        except BaseException:
            self.close()
            raise

    @property
    def layout(self) -> str:
        n = self.processes * self.spec.threads
        return f"{self.processes} processes x {self.spec.threads} threads = {n} buyers"

    def _collect(self, timeout_s: float) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        got: list[Any] = []
        while len(got) < self.processes:
            try:
                status, index, payload = self._results.get(timeout=1.0)
            except queue.Empty:
                if dead := [p.name for p in self._procs if not p.is_alive()]:
                    raise RuntimeError(f"buyer processes exited: {dead}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"buyer processes silent for {timeout_s} s") from None
                continue
            if status == "failed":
                raise RuntimeError(f"buyer process {index} failed:\n{payload}")
            got.append(payload)
        return got

    def run(self, *cmd: Any, timeout_s: float = 300) -> Measurement:
        start_at = time.time() + 0.3
        for q in self._commands:
            q.put((cmd[0], cmd[1], cmd[2], start_at, *cmd[3:]))
        total = Measurement()
        for part in self._collect(timeout_s):
            total.merge_concurrent(part)
        return total

    def close(self) -> None:
        for q, p in zip(self._commands, self._procs, strict=True):
            if p.is_alive():
                q.put(("stop",))
        for p in self._procs:
            p.join(timeout=15)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)

    def __enter__(self) -> BuyerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- the scratch database ----------------------------------------------------------------


@contextmanager
def _pinned(db: ScratchDatabase, tenant: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db.app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        yield conn


def _stocked_item(db: ScratchDatabase, tenant: uuid.UUID, loc: uuid.UUID, units: int) -> uuid.UUID:
    """A new item with `units` on hand at `loc`, received by inventory.apply_move."""
    item = uuid.uuid4()
    with _pinned(db, tenant) as conn:
        conn.execute(
            "INSERT INTO inventory.items (id, sku, name, unit) VALUES (%s, %s, 'Bench', 'each')",
            (item, f"BENCH-{item.hex[:12]}"),
        )
        conn.execute(
            "SELECT inventory.apply_move(%s, 'receipt', %s, %s, NULL, %s, 1, NULL, NULL, NULL)",
            (uuid.uuid4(), item, units, loc),
        )
    return item


def _level_facts(db: ScratchDatabase, tenant: uuid.UUID, item: uuid.UUID) -> dict[str, int]:
    with _pinned(db, tenant) as conn:
        row = conn.execute(
            """SELECT l.on_hand, l.reserved,
                      (SELECT coalesce(sum(r.quantity - r.consumed), 0)
                         FROM inventory.reservations r
                        WHERE r.item_id = l.item_id AND r.location_id = l.location_id
                          AND r.status = 'held'),
                      (SELECT count(*) FROM inventory.reservations r WHERE r.item_id = l.item_id)
                 FROM inventory.stock_levels l WHERE l.item_id = %s""",
            (item,),
        ).fetchone()
    assert row is not None
    return {"on_hand": row[0], "reserved": row[1], "held_sum": int(row[2]), "rows": row[3]}


# -- the scenario ----------------------------------------------------------------------------


def run(ctx: Context) -> Result:
    p = ctx.params
    with scratch_database(ctx.servers, "hotsku") as db:
        with services(settings_for(db, ctx.servers.redis_url)) as erp_db:
            tenant, _ = provision(erp_db, "bench-hot-sku")
        with _pinned(db, tenant) as conn:
            row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
        assert row is not None, "the default template made no default location"
        loc = row[0]
        hot = _stocked_item(db, tenant, loc, HOT_STOCK)
        spec = Spec(db.app_url, str(tenant), str(loc), p["threads"])
        totals = {v: Measurement() for v in VARIANTS}
        samplers = {v: WaitSampler(db.owner_url, db.name) for v in VARIANTS}
        last: dict[str, dict[str, Any]] = {}
        with BuyerPool(spec, p["processes"]) as pool:
            ctx.log(f"{pool.layout}; hot item {hot}")
            # Never the two kinds at once: the seed's pattern locks the level before the
            # item (its commit-time event trigger takes the item), ours the item first.
            primed = Measurement()
            for variant in VARIANTS:
                primed.add(pool.run("prime", variant, hot))
            ctx.log(f"primed every connection with each kind ({primed.errors} errors)")
            per_round = p["seconds"] / p["rounds"]
            for order in round_orders(list(VARIANTS), p["rounds"]):
                for variant in order:
                    with samplers[variant].sampling():
                        m = pool.run("run", variant, hot, p["warmup_s"], per_round)
                    totals[variant].add(m)
                    ctx.log(
                        f"{variant}: {len(m.latencies_s) / m.seconds:,.0f} reservations/s "
                        f"over {m.seconds:.1f} s (load {loadavg()[0]})"
                    )
            for variant in VARIANTS:
                item = _stocked_item(db, tenant, loc, p["last_units"])
                m = pool.run("drain", variant, item)
                facts = _level_facts(db, tenant, item)
                last[variant] = {
                    "units": p["last_units"],
                    "granted": m.posted,
                    "oversold": max(0, m.posted - p["last_units"]),
                    "errors": m.errors,
                    "level": facts,
                }
                ctx.log(f"last {p['last_units']} units, {variant}: {m.posted} granted")
        hot_facts = _level_facts(db, tenant, hot)
    rows = [
        totals["ours"].row(f"ours: inventory.reserve, one flight, {pool.layout}"),
        totals["seed"].row(
            f"seed: SELECT ... FOR UPDATE, then UPDATE, {pool.layout}",
            ceiling=True,
            role="comparison",
        ),
    ]
    posted = sum(t.posted for t in totals.values()) + sum(x["granted"] for x in last.values())
    checks = [
        Check(
            "no errors under load",
            not any(t.errors for t in totals.values())
            and not any(x["errors"] for x in last.values()),
            str([t.error_samples for t in totals.values()]),
        ),
        Check("ours oversold 0 units", last["ours"]["oversold"] == 0, str(last["ours"])),
        *(
            Check(
                f"{v}: the last units' level holds reserved = held reservations <= on_hand",
                x["level"]["reserved"] == x["level"]["held_sum"] <= x["level"]["on_hand"],
                str(x["level"]),
            )
            for v, x in last.items()
        ),
        Check(
            "every reservation counted is committed, the hot level agrees",
            hot_facts["rows"] == sum(t.posted for t in totals.values()) + primed.posted
            and hot_facts["reserved"] == hot_facts["held_sum"] == hot_facts["rows"],
            f"{hot_facts}, counted {posted}",
        ),
    ]
    ratio = rows[0].ops_per_s / rows[1].ops_per_s
    return Result(
        rows,
        [
            Ratio(
                "ours/seed",
                ratio,
                f"reservations per second of one hot SKU, {pool.layout}: inventory.reserve in "
                "one round trip / the seed's SELECT ... FOR UPDATE then UPDATE, same rows, "
                "same run (higher is better)",
                target=TARGET,
                higher_is_worse=False,
            )
        ],
        checks,
        {
            "last_units": last,
            "oversold": {v: x["oversold"] for v, x in last.items()},
            "hot_level": hot_facts,
            "waits": {v: s.shares(10) for v, s in samplers.items()},
            "cores": {v: t.cores for v, t in totals.items()},
        },
        [
            f"layout: {pool.layout}; each reservation one unit, its own transaction",
            *(
                f"last {x['units']} units, {v}: {x['granted']} granted, oversold {x['oversold']}"
                for v, x in last.items()
            ),
            *(s.line(v) for v, s in samplers.items()),
        ],
    )


SCENARIO = Scenario(
    name="inventory_hot_sku",
    description="reservations/s of one hot SKU, 64 buyers: one SQL call vs FOR UPDATE + UPDATE",
    run=run,
    defaults={
        "processes": 4,
        "threads": 16,
        "seconds": 24.0,
        "rounds": 4,
        "warmup_s": 1.0,
        "last_units": 200,
    },
    quick={"seconds": 4.0, "rounds": 1, "warmup_s": 0.5, "last_units": 50},
)
