"""Helpers shared by the ledger posting scenarios (not a scenario itself): postings
under concurrent load, through the service layer or the plpgsql ceiling.

Python threads in one process share one GIL, so the service side runs in several
processes (multiprocessing, spawn) of several threads each, every process with its
own `erp.extensions.db`. The processes start once and then run measured windows on
command: all threads start at one wall-clock instant, post for `warmup_s` without
recording, then record every posting that completes within the next `duration_s`
(throughput = recorded / duration_s). Every posting is its own committed unit of work.

The ceiling is the same rows inserted by `bench.post_pair` (ledger_data.py) under
pgbench; without pgbench, by a pool of the same layout calling that function in one
round trip per transaction.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bench.apps import provision, services, settings_for
from bench.core import Context
from bench.scenarios.ledger_data import (
    CURRENCY,
    WaitSampler,
    account_uuid,
    analyze,
    autovacuum,
    create_accounts,
    create_ceiling_function,
    load_posting_history,
    loadavg,
)
from bench.servers import ScratchDatabase, scratch_database
from bench.stats import Row, summarize
from erp.config import Settings

MAX_AMOUNT = 100_000
T = TypeVar("T")


@dataclass(frozen=True)
class PoolSpec:
    #: "service": erp.ledger.services.post_transaction in db.unit_of_work(one_flight=True)
    #: (one message: BEGIN, pin, the call, COMMIT);
    #: "function": SELECT bench.post_pair(...) on a psycopg connection (autocommit).
    kind: str
    app_url: str
    tenant_id: str
    #: Accounts: asset 0 .. assets-1 (debited), revenue 0 .. revenues-1 (credited).
    assets: int
    revenues: int
    threads: int
    seed: int = 1


@dataclass(frozen=True)
class Window:
    #: "spread": a random asset account per posting; "hot": always asset 0.
    variant: str
    warmup_s: float
    duration_s: float
    #: The transactions' description, so that a check can count what was committed.
    description: str


@dataclass
class Measurement:
    latencies_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: Every posting that committed, warm-up and stragglers included.
    posted: int = 0
    #: CPU seconds the load side used during the recorded window(s).
    cpu_s: float = 0.0

    def add(self, other: Measurement) -> None:
        self.latencies_s += other.latencies_s
        self.seconds += other.seconds
        self.errors += other.errors
        self.error_samples = (self.error_samples + other.error_samples)[:5]
        self.posted += other.posted
        self.cpu_s += other.cpu_s

    def merge_concurrent(self, other: Measurement) -> None:
        """Fold in another process of the same window (same seconds)."""
        seconds = max(self.seconds, other.seconds)
        self.add(other)
        self.seconds = seconds

    def row(self, label: str, *, ceiling: bool = False, role: str = "") -> Row:
        return summarize(
            label, self.latencies_s, self.seconds, errors=self.errors, ceiling=ceiling, role=role
        )

    @property
    def cores(self) -> float:
        return self.cpu_s / self.seconds if self.seconds else 0.0


# -- the child process ------------------------------------------------------------


class _ServicePoster:
    def __init__(self, spec: PoolSpec) -> None:
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

    def post(self, _thread: int, debit: int, credit: int, amount: int, description: str) -> None:
        from erp.ledger import services
        from erp.ledger.commands import EntryIn, PostTransaction

        cmd = PostTransaction(
            description=description,
            entries=[
                EntryIn(account_uuid("asset", debit), amount, CURRENCY),
                EntryIn(account_uuid("revenue", credit), -amount, CURRENCY),
            ],
        )
        self.db.unit_of_work(
            lambda s: services.post_transaction(s, cmd), tenant=self.tenant, one_flight=True
        )

    def close(self) -> None:
        self.db.dispose()


class _FunctionPoster:
    SQL = "SELECT bench.post_pair(%s, %s, %s, %s, %s)"

    def __init__(self, spec: PoolSpec) -> None:
        import psycopg

        self.tenant = uuid.UUID(spec.tenant_id)
        self.conns = [psycopg.connect(spec.app_url, autocommit=True) for _ in range(spec.threads)]

    def post(self, thread: int, debit: int, credit: int, amount: int, description: str) -> None:
        args = [self.tenant, debit, credit, amount, description]
        self.conns[thread].execute(self.SQL, args, prepare=True)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def _run_window(spec: PoolSpec, poster: Any, w: Window, start_at: float, index: int) -> Measurement:
    record_from = start_at + w.warmup_s
    end = record_from + w.duration_s
    lock = threading.Lock()
    total = Measurement(seconds=w.duration_s)

    def thread_main(t: int) -> None:
        rng = random.Random(f"{spec.seed}:{index}:{t}:{start_at}")
        mine = Measurement()
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < end:
            debit = 0 if w.variant == "hot" else rng.randrange(spec.assets)
            credit = rng.randrange(spec.revenues)
            t0 = time.perf_counter()
            try:
                poster.post(t, debit, credit, rng.randint(1, MAX_AMOUNT), w.description)
            except Exception as exc:
                mine.errors += 1
                if len(mine.error_samples) < 3:
                    mine.error_samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                continue
            elapsed = time.perf_counter() - t0
            mine.posted += 1
            if record_from <= time.time() <= end:
                mine.latencies_s.append(elapsed)
        with lock:
            total.add(mine)

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(spec.threads)]
    for th in threads:
        th.start()
    time.sleep(max(0.0, record_from - time.time()))
    cpu = time.process_time()
    time.sleep(max(0.0, end - time.time()))
    total_cpu = time.process_time() - cpu
    for th in threads:
        th.join()
    total.seconds = w.duration_s
    total.cpu_s = total_cpu
    return total


def _child(spec: PoolSpec, index: int, commands: Any, results: Any) -> None:
    try:
        poster = _ServicePoster(spec) if spec.kind == "service" else _FunctionPoster(spec)
    except BaseException:
        results.put(("failed", index, traceback.format_exc()))
        return
    results.put(("ready", index, None))
    try:
        while True:
            cmd = commands.get()
            if cmd[0] == "stop":
                return
            _, window, start_at = cmd
            try:
                results.put(("done", index, _run_window(spec, poster, window, start_at, index)))
            except BaseException:
                results.put(("failed", index, traceback.format_exc()))
    finally:
        poster.close()


# -- the parent side ----------------------------------------------------------------


class PostingPool:
    """`processes` spawned processes x `spec.threads` threads, one connection each."""

    def __init__(self, spec: PoolSpec, processes: int, ready_s: float = 180) -> None:
        ctx = mp.get_context("spawn")
        self.spec = spec
        self.processes = processes
        self._results: Any = ctx.Queue()
        self._commands: list[Any] = [ctx.Queue() for _ in range(processes)]
        self._procs = [
            ctx.Process(
                target=_child,
                args=(spec, i, self._commands[i], self._results),
                name=f"bench-{spec.kind}-{i}",
                daemon=True,
            )
            for i in range(processes)
        ]
        for p in self._procs:
            p.start()
        try:
            self._collect("ready", ready_s)
        except BaseException:
            self.close()
            raise

    @property
    def layout(self) -> str:
        n = self.processes * self.spec.threads
        return f"{self.processes} processes x {self.spec.threads} threads = {n} connections"

    def _collect(self, kind: str, timeout_s: float) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        got: list[Any] = []
        while len(got) < self.processes:
            try:
                status, index, payload = self._results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"posting processes exited: {dead}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no {kind!r} from posting processes in {timeout_s} s"
                    ) from None
                continue
            if status == "failed":
                raise RuntimeError(f"posting process {index} failed:\n{payload}")
            got.append(payload)
        return got

    def run(self, window: Window) -> Measurement:
        start_at = time.time() + 0.3
        for q in self._commands:
            q.put(("run", window, start_at))
        total = Measurement()
        for part in self._collect("done", window.warmup_s + window.duration_s + 120):
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

    def __enter__(self) -> PostingPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- the ceiling: pgbench, else a function-calling pool ----------------------------------


def pgbench_binary() -> str | None:
    """pgbench on PATH, else next to pg_ctl, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if found := shutil.which("pgbench"):
        candidates.append(Path(found))
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(Path(pg_ctl).resolve().parent / "pgbench")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


class FunctionCeiling:
    """`bench.post_pair` at the same concurrency: pgbench -c `clients` -j `jobs`
    (-M prepared: one round trip per transaction), or without pgbench a PostingPool
    of kind "function" with the service's layout."""

    def __init__(self, spec: PoolSpec, processes: int, jobs: int = 2) -> None:
        self.spec = spec
        self.clients = processes * spec.threads
        self.jobs = jobs
        self.binary = pgbench_binary()
        self.version = ""
        self._pool: PostingPool | None = None
        if self.binary is None:
            self._pool = PostingPool(replace(spec, kind="function"), processes)
            self.method = (
                f"pgbench not found: psycopg loop calling bench.post_pair, one round trip per "
                f"transaction, {self._pool.layout}"
            )
        else:
            out = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, check=False
            )
            self.version = out.stdout.strip()
            self.method = (
                f"{self.version}: -M prepared -c {self.clients} -j {jobs} calling bench.post_pair"
            )

    def run(self, window: Window) -> Measurement:
        if self._pool is not None:
            return self._pool.run(window)
        with tempfile.TemporaryDirectory(prefix="erp-bench-pgbench-") as tmp:
            script = Path(tmp) / "post.sql"
            script.write_text(self._script(window))
            warm = self._pgbench(script, window.warmup_s, None) if window.warmup_s > 0 else None
            m = self._pgbench(script, window.duration_s, Path(tmp) / "log")
        if warm is not None:  # committed too: the count checks include them
            m.posted += warm.posted
            m.errors += warm.errors
        return m

    def _script(self, w: Window) -> str:
        debit = "0" if w.variant == "hot" else f"random(0, {self.spec.assets - 1})"
        return (
            f"\\set debit {debit}\n"
            f"\\set credit random(0, {self.spec.revenues - 1})\n"
            f"\\set amount random(1, {MAX_AMOUNT})\n"
            f"SELECT bench.post_pair('{uuid.UUID(self.spec.tenant_id)}', :debit, :credit, "
            f":amount, '{w.description}');\n"
        )

    def _pgbench(self, script: Path, seconds: float, log: Path | None) -> Measurement:
        assert self.binary is not None
        args = [self.binary, "-n", "-M", "prepared", "-c", str(self.clients), "-j", str(self.jobs)]
        args += ["-T", str(max(1, round(seconds))), "-f", str(script)]
        if log is not None:
            args += ["-l", "--log-prefix", str(log)]
        args.append(self.spec.app_url)
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = proc.stdout + proc.stderr
        processed = _PROCESSED.search(out)
        tps = _TPS.search(out)
        failed = _FAILED.search(out)
        if proc.returncode != 0 or processed is None or tps is None:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{out[-3000:]}")
        m = Measurement(posted=int(processed.group(1)))
        m.errors = int(failed.group(1)) if failed else 0
        m.seconds = m.posted / float(tps.group(1)) if float(tps.group(1)) else seconds
        m.cpu_s = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
        if log is not None:
            for path in log.parent.glob(log.name + ".*"):
                for line in path.read_text().splitlines():
                    m.latencies_s.append(int(line.split()[2]) / 1e6)
        return m

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> FunctionCeiling:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- a scratch database ready for postings ---------------------------------------------


@dataclass(frozen=True)
class PostingSetup:
    db: ScratchDatabase
    settings: Settings
    tenant_id: uuid.UUID
    #: An API key of the tenant ("" unless key_scopes were asked for).
    api_key: str
    spec: PoolSpec
    #: The server's autovacuum setting; when off, between_rounds() analyzes instead.
    autovacuum: str
    history: dict[str, Any]

    def between_rounds(self) -> None:
        if self.autovacuum != "on":
            analyze(self.db)

    def facts(self) -> dict[str, Any]:
        return {"history": self.history, "autovacuum": self.autovacuum}

    def note(self) -> str:
        h = self.history
        line = (
            f"history before measuring: {h['transactions']:,} posted transactions over "
            f"{h['days']} days (bulk-loaded in {h['seconds']} s, VACUUM ANALYZE)"
        )
        if self.autovacuum != "on":
            line += (
                "; autovacuum is OFF on this server: the ledger tables are ANALYZEd between "
                "rounds, as autoanalyze would (else pooled sessions keep plans made on "
                "smaller tables)"
            )
        return line


@contextmanager
def posting_database(
    ctx: Context, prefix: str, key_scopes: list[str] | None = None
) -> Iterator[PostingSetup]:
    """A migrated scratch database with one tenant (default template), `assets` asset
    and `revenues` revenue bench accounts, and the ceiling function; dropped afterwards."""
    p = ctx.params
    with scratch_database(ctx.servers, prefix) as db:
        settings = settings_for(db, ctx.servers.redis_url)
        with services(settings) as erp_db:
            tenant_id, key = provision(erp_db, f"bench-{prefix}", key_scopes=key_scopes)
            create_accounts(erp_db, tenant_id, "asset", p["assets"], ["asset"])
            create_accounts(erp_db, tenant_id, "revenue", p["revenues"], ["revenue"])
        create_ceiling_function(db)
        history = load_posting_history(
            db, tenant_id, p["history"], p["assets"], p["revenues"], p["history_days"]
        )
        spec = PoolSpec(
            "service", db.app_url, str(tenant_id), p["assets"], p["revenues"], p["threads"]
        )
        ctx.log(
            f"tenant {tenant_id}: {p['assets']} asset and {p['revenues']} revenue accounts, "
            f"{p['history']:,} transactions of history loaded in {history['seconds']} s"
        )
        yield PostingSetup(db, settings, tenant_id, key, spec, autovacuum(db), history)


def round_orders(names: list[T], rounds: int) -> list[list[T]]:
    """ABBA...: the variants alternate, each going first in every other round."""
    return [names if r % 2 == 0 else names[::-1] for r in range(rounds)]


#: The transactions' descriptions, by side: the committed-count checks group by them.
DESCRIPTIONS = {"service": "bench service", "ceiling": "bench function"}


@dataclass
class Series:
    """Measurements of (variant, side) combinations, alternated in the same rounds."""

    totals: dict[tuple[str, str], Measurement]
    waits: dict[str, dict[str, float]]
    wait_lines: list[str]
    loadavg_during: list[list[float]]

    def posted(self) -> dict[str, int]:
        """Committed postings counted, by transaction description."""
        out: dict[str, int] = {}
        for (_variant, side), m in self.totals.items():
            out[DESCRIPTIONS[side]] = out.get(DESCRIPTIONS[side], 0) + m.posted
        return out

    def errors(self) -> dict[str, int]:
        return {f"{v} {s}": m.errors for (v, s), m in self.totals.items()}

    def error_samples(self) -> list[str]:
        return [x for m in self.totals.values() for x in m.error_samples][:5]


def measure(
    ctx: Context,
    setup: PostingSetup,
    pool: PostingPool,
    ceiling: FunctionCeiling | None,
    combos: list[tuple[str, str]],
) -> Series:
    """Each (variant, side) for `seconds` in total, in `rounds` rounds of ABBA order;
    side "service" runs on `pool`, "ceiling" on `ceiling`. pg_stat_activity is
    sampled during each, to tell where the sessions' time goes."""
    p = ctx.params
    per_round = p["seconds"] / p["rounds"]
    totals = {c: Measurement() for c in combos}
    samplers = {c: WaitSampler(setup.db.owner_url, setup.db.name) for c in combos}
    loads: list[list[float]] = []
    for order in round_orders(combos, p["rounds"]):
        for variant, side in order:
            window = Window(variant, p["warmup_s"], per_round, DESCRIPTIONS[side])
            with samplers[variant, side].sampling():
                if side == "service":
                    m = pool.run(window)
                else:
                    assert ceiling is not None
                    m = ceiling.run(window)
            totals[variant, side].add(m)
            setup.between_rounds()
            loads.append(loadavg())
            ctx.log(
                f"{variant} {side}: {len(m.latencies_s) / m.seconds:,.0f} postings/s over "
                f"{m.seconds:.1f} s (load {loads[-1][0]})"
            )
    return Series(
        totals,
        {f"{v} {s}": sampler.shares(10) for (v, s), sampler in samplers.items()},
        [sampler.line(f"{v} {s}") for (v, s), sampler in samplers.items()],
        loads,
    )
