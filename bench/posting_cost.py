"""What one posting costs the service layer, in process: round trips and CPU (issue 15).

    python -m bench.posting_cost [--postings 2000]

Not a load test (no concurrency, nothing to compare with a ceiling): it tells how many
times a posting waits for PostgreSQL and how much Python CPU it burns, the two figures
a change to the write path should move. A scratch database (as every scenario makes)
holds one tenant on the default chart plus bench accounts; then, one thread:

- `plain`: two-leg postings, a random asset account debited, a revenue one credited
  (no guard involved);
- `guarded`: the credit side is a `non_negative` asset account funded beforehand, so
  the posting must lock it and read its balance.

Each posting is its own `db.unit_of_work` (BEGIN, tenant pin, the service, COMMIT);
the `... one flight` variants pass `one_flight=True`, which sends the four as one
message (docs/domains.md, "How to add a fast command").
Round trips are counted on the wire over 100 postings: libpq's trace of the
connection, one per simple Query or extended-protocol Sync the client sends.
The `SQLAlchemy` column counts the statements that went through SQLAlchemy
(`before_cursor_execute`; a call on the raw connection, `erp.db.call_one`, is not one). CPU is
`time.process_time()` over `--postings` untraced postings (this process only:
PostgreSQL's CPU is not in it), after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from bench.apps import provision, services, settings_for
from bench.scenarios.ledger_data import CURRENCY, create_accounts
from bench.servers import Servers, scratch_database

ASSETS = 50
TRACED = 100
REVENUES = 4


class WireCounter:
    """Round trips and statements of every connection of an engine."""

    def __init__(self, engine: Any) -> None:
        self.statements = 0
        self.trace = tempfile.NamedTemporaryFile("w+b", prefix="posting-trace-", delete=False)  # noqa: SIM115
        self.tracing = False
        event.listen(engine, "before_cursor_execute", self._on_statement)
        event.listen(engine, "checkout", self._on_checkout)

    def _on_statement(self, *_: Any) -> None:
        self.statements += 1

    def _on_checkout(self, dbapi_conn: Any, *_: Any) -> None:
        from psycopg.pq import Trace

        pgconn = dbapi_conn.pgconn
        if self.tracing:
            pgconn.trace(self.trace.fileno())
            pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        else:
            pgconn.untrace()

    def round_trips(self) -> int:
        """Messages after which the client waits for the server: Query, Sync."""
        self.trace.flush()
        with open(self.trace.name, "rb") as f:
            # a line: F (frontend), length, message type, ... (timestamps suppressed)
            sent = (line.split(b"\t") for line in f if line.startswith(b"F\t"))
            return sum(1 for fields in sent if fields[2].split()[0] in (b"Query", b"Sync"))

    def reset(self) -> None:
        self.statements = 0
        self.trace.truncate(0)
        self.trace.seek(0)

    def close(self) -> None:
        self.trace.close()
        os.unlink(self.trace.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postings", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    from erp.ledger import services as ledger
    from erp.ledger.commands import EntryIn, NewAccount, PostTransaction

    with Servers() as servers, scratch_database(servers, "cost") as scratch:
        settings = settings_for(scratch, servers.redis_url)
        with services(settings) as db:
            tenant, _ = provision(db, "posting-cost")
            assets = create_accounts(db, tenant, "asset", ASSETS, ["asset"])
            revenues = create_accounts(db, tenant, "revenue", REVENUES, ["revenue"])
            vault = db.unit_of_work(
                lambda s: (
                    ledger.create_account(
                        s, NewAccount("VAULT", "Vault", "asset", CURRENCY, guard="non_negative")
                    ).id
                ),
                tenant=tenant,
            )
            rng = random.Random(15)

            def post(entries: list[EntryIn], one_flight: bool = False) -> None:
                cmd = PostTransaction(description="posting cost", entries=entries)
                db.unit_of_work(
                    lambda s: ledger.post_transaction(s, cmd), tenant=tenant, one_flight=one_flight
                )

            def plain(one_flight: bool = False) -> None:
                n = rng.randint(1, 10_000)
                post(
                    [
                        EntryIn(rng.choice(assets), n, CURRENCY),
                        EntryIn(rng.choice(revenues), -n, CURRENCY),
                    ],
                    one_flight,
                )

            def guarded(one_flight: bool = False) -> None:
                post(
                    [EntryIn(rng.choice(assets), 1, CURRENCY), EntryIn(vault, -1, CURRENCY)],
                    one_flight,
                )

            total = 2 * (args.postings + args.warmup + TRACED + 1)
            post([EntryIn(vault, total, CURRENCY), EntryIn(revenues[0], -total, CURRENCY)])
            counter = WireCounter(db.engine)
            try:
                print(f"{args.postings} postings per variant, one thread, {CURRENCY}")
                print(f"{'variant':<20} {'round trips':>12} {'SQLAlchemy':>11} "
                      f"{'CPU ms/posting':>15} {'wall ms/posting':>16}")  # fmt: skip
                for name, fn in (
                    ("plain", plain),
                    ("guarded", guarded),
                    ("plain one flight", lambda: plain(True)),
                    ("guarded one flight", lambda: guarded(True)),
                ):
                    _measure(name, fn, args.postings, args.warmup, counter)
            finally:
                counter.close()


def _measure(name: str, fn: Callable[[], None], n: int, warmup: int, counter: WireCounter) -> None:
    """Round trips and statements over TRACED postings (tracing costs CPU), then CPU
    and wall time over `n` untraced ones."""
    for _ in range(warmup):
        fn()
    counter.reset()
    counter.tracing = True
    for _ in range(TRACED):
        fn()
    counter.tracing = False
    trips, statements = counter.round_trips() / TRACED, counter.statements / TRACED
    fn()  # the connection leaves trace mode at its next checkout
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    print(
        f"{name:<20} {trips:>12.2f} {statements:>11.2f} "
        f"{cpu / n * 1000:>15.3f} {wall / n * 1000:>16.3f}"
    )


if __name__ == "__main__":
    main()
