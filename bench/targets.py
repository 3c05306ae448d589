"""The closing table of a run: each target of issue 15 (the write path at the
database's speed), its figure, the same-run ceiling or reference, the ratio and
the verdict; also written as `targets.json` beside the scenarios' JSON.

A scenario answers a target by returning a `Ratio` whose `headline` is one of
the keys below. A target whose scenario did not run (or failed) is printed as
not measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import Ratio


@dataclass(frozen=True)
class Target:
    key: str
    figure: str
    scenario: str


TARGETS: tuple[Target, ...] = (
    Target(
        "api/ceiling",
        "API postings/s ÷ raw plpgsql ceiling (pgbench, same rows, 16 clients)",
        "ledger_post_api",
    ),
    Target("service/ceiling", "service-layer postings/s ÷ the same ceiling", "ledger_post_api"),
    Target(
        "posting cpu",
        "CPU per posting ÷ CPU per GET /healthz (1 process, 1 thread, sequential)",
        "request_cpu",
    ),
    Target("me cpu", "CPU per GET /api/v1/me ÷ CPU per GET /healthz (same way)", "request_cpu"),
    Target("me rps", "GET /api/v1/me ÷ GET /healthz requests/s through gunicorn", "me_rps"),
    Target(
        "rls request",
        "RLS per request: GET /ledger/accounts/{id} as erp_app ÷ BYPASSRLS + tenant filter "
        "(time per request)",
        "rls_request",
    ),
    Target(
        "balance as_of p99",
        "balance as of a random past time, 10 M entries on one account, p99 ÷ 5 ms",
        "ledger_balance_read",
    ),
)

_COLUMNS = ("figure", "value", "ceiling/reference", "ratio", "target", "verdict")


def _bound(r: Ratio) -> str:
    if r.target is None:
        return "-"
    return f"{'≤' if r.higher_is_worse else '≥'} {r.target:g}"


def rows(found: Mapping[str, Ratio], quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in TARGETS:
        r = found.get(t.key)
        if r is None:
            out.append({"key": t.key, "figure": t.figure, "scenario": t.scenario, "ratio": None})
            continue
        out.append(
            {
                "key": t.key,
                "figure": t.figure,
                "scenario": t.scenario,
                "value": r.figure,
                "reference": r.reference,
                "ratio": round(r.value, 4),
                "target": _bound(r),
                "verdict": r.verdict() + (" (quick run)" if quick else ""),
            }
        )
    return out


def table(items: Sequence[dict[str, Any]]) -> str:
    cells = [
        (
            (
                i["figure"],
                i["value"],
                i["reference"],
                f"{i['ratio']:.3f}",
                i["target"],
                i["verdict"],
            )
            if i["ratio"] is not None
            else (i["figure"], "-", "-", "-", "-", f"not measured ({i['scenario']} did not run)")
        )
        for i in items
    ]
    widths = [max(len(c), *(len(r[k]) for r in cells)) for k, c in enumerate(_COLUMNS)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(_COLUMNS), rule, *(line(r) for r in cells)])


def write(path: Path, items: Sequence[dict[str, Any]], context: Mapping[str, Any]) -> None:
    doc = {
        "issue": 15,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        **context,
        "targets": list(items),
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
