"""The valuation report as CSV (as the ledger's reports: formula-looking cells defused)."""

from __future__ import annotations

import csv
import io
from typing import Any


def _cell(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def valuation_csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["item_id", "sku", "on_hand", "value", "currency"])
    for r in data["rows"]:
        w.writerow(
            [_cell(x) for x in (str(r["item_id"]), r["sku"], r["on_hand"], r["value"])]
            + [data["currency"]]
        )
    w.writerow(["TOTAL", "", "", data["total"], data["currency"]])
    w.writerow(["LEDGER_BALANCE", "", "", data["ledger_balance"], data["currency"]])
    return out.getvalue()
