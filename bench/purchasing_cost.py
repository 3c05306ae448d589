"""What one purchase-order receipt and one cycle count cost the service layer, in
process: round trips and CPU (issue 16). Modeled on `bench.posting_cost`.

    python -m bench.purchasing_cost [--calls 500]

A scratch database holds one tenant on the default template, 50 items and one sent
purchase order with a line of 10^12 units per item; then, one thread, each call its
own `db.unit_of_work` with `one_flight=True` (as the routes run them: `@one_flight`):

- `receive 1 line`: one unit of a random line: one receipt move, one posting, the
  purchase_order.received event (and a stock.changed at commit);
- `receive 5 lines`: one unit of five random lines: five moves, one posting;
- `count 1 line`: a count of one item at MAIN that differs from what is on hand (it
  alternates), so one `adjustment` move and one posting each time.

Round trips are counted on the wire (libpq trace: one per Query or Sync the client
sends) over 100 calls; CPU (`time.process_time()`, this process only) and wall time
over `--calls` untraced calls, after a warm-up.
"""

from __future__ import annotations

import argparse
import random
import uuid
from typing import Any

from bench.apps import provision, services, settings_for
from bench.posting_cost import TRACED, WireCounter, _measure
from bench.servers import Servers, scratch_database

ITEMS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    from erp.inventory import counts, purchasing
    from erp.inventory import services as inventory
    from erp.inventory.commands import NewItem

    with Servers() as servers, scratch_database(servers, "po-cost") as scratch:
        settings = settings_for(scratch, servers.redis_url)
        with services(settings) as db:
            tenant, _ = provision(db, "purchasing-cost")

            def setup(s: Any) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
                items = [
                    inventory.create_item(s, NewItem(f"SKU-{i:03}", f"Item {i}", "each")).id
                    for i in range(ITEMS)
                ]
                supplier = purchasing.create_supplier(s, purchasing.NewSupplier("Bench"))
                po = purchasing.create_purchase_order(
                    s,
                    purchasing.NewPurchaseOrder(
                        supplier["id"], [purchasing.LineIn(i, 10**12, 250) for i in items]
                    ),
                )
                purchasing.transition(s, po.id, "send")
                return po.id, [ln.id for ln in po.lines], items

            po_id, lines, items = db.unit_of_work(setup, tenant=tenant)
            main_location = db.unit_of_work(lambda s: purchasing._location(s, None), tenant=tenant)
            rng = random.Random(16)

            def receive(n: int) -> None:
                picked = rng.sample(lines, n)
                cmd = purchasing.Receive(po_id, [purchasing.ReceiveLine(ln, 1) for ln in picked])
                db.unit_of_work(
                    lambda s: purchasing.receive(s, cmd), tenant=tenant, one_flight=True
                )

            # each item's on hand at MAIN starts at 0: a count alternates 7 / 3 so that
            # every count makes one adjustment (in, then out)
            flip = dict.fromkeys(items, 0)

            def count() -> None:
                item = rng.choice(items)
                flip[item] = 7 if flip[item] != 7 else 3
                cmd = counts.NewCount(main_location, [counts.CountLineIn(item, flip[item])])
                db.unit_of_work(lambda s: counts.count(s, cmd), tenant=tenant, one_flight=True)

            counter = WireCounter(db.engine)
            try:
                print(f"{args.calls} calls per variant (round trips over {TRACED}), one thread")
                print(f"{'variant':<20} {'round trips':>12} {'SQLAlchemy':>11} "
                      f"{'CPU ms/call':>15} {'wall ms/call':>16}")  # fmt: skip
                for name, fn in (
                    ("receive 1 line", lambda: receive(1)),
                    ("receive 5 lines", lambda: receive(5)),
                    ("count 1 line", count),
                ):
                    _measure(name, fn, args.calls, args.warmup, counter)
            finally:
                counter.close()


if __name__ == "__main__":
    main()
