"""`erp bench [NAME...] [--quick]`: run scenarios, print their tables, write bench/results/*.json.

Each scenario's JSON holds the machine facts, the versions, the durability
settings, its parameters, its figures, the same-run ceiling and the ratios to
it. The exit status is 1 when a scenario failed or one of its checks did not
hold (errors under load, a plan that ignores the tenant index...), never for
a ratio that misses its target: that is a finding to report, not a crash.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import facts, targets, wrk
from bench.core import Context, Ratio, Result, Scenario
from bench.scenarios import EXTRA, SCENARIOS, load
from bench.servers import Servers, durability, durable, redact

RESULTS = Path(__file__).resolve().parent / "results"


def main(names: list[str], quick: bool) -> int:
    return run(names, quick=quick)


def run(
    names: Sequence[str],
    *,
    quick: bool = False,
    servers: Servers | None = None,
    results_dir: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Run `names` (all when empty); `overrides[name]` replaces some of a scenario's parameters."""
    unknown = [n for n in names if n not in SCENARIOS + EXTRA]
    if unknown:
        known = ", ".join(SCENARIOS + EXTRA)
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {known}")
        return 2
    scenarios = [load(n) for n in (names or SCENARIOS)]
    if missing := _missing_tools(scenarios):
        print(_banner(missing))
        return 1
    out_dir = results_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    owned = servers is None
    servers = servers or Servers()
    try:
        with servers.connect(autocommit=True) as conn:
            settings = durability(conn)
            versions = facts.versions(conn)
        if not durable(settings):
            print(_banner(f"the server runs without durability ({settings}); refusing to bench"))
            return 1
        server = redact(servers.database_url)
        print(f"server {server}: PostgreSQL {versions['postgresql']}, {settings}")
        tables: list[str] = []
        failed: list[str] = []
        headlines: dict[str, Ratio] = {}
        summaries: list[str] = []
        context = {"server": server, "versions": versions, "durability": settings}
        for scenario in scenarios:
            scenario_overrides = (overrides or {}).get(scenario.name)
            doc, table, result = _run_one(scenario, servers, quick, scenario_overrides, context)
            path = out_dir / f"{scenario.name}.json"
            path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
            print(table + f"\n  -> {path}\n", flush=True)
            tables.append(table)
            if not doc["ok"]:
                failed.append(scenario.name)
            if result is not None:
                headlines.update({r.headline: r for r in result.ratios if r.headline})
                summaries += result.summary
        print(
            "\n" + "=" * 100 + "\nAll figures (absolute numbers on shared machines move ±30%; "
            "read the ratios)\n"
        )
        print("\n\n".join(tables))
        items = targets.rows(headlines, quick)
        targets.write(out_dir / "targets.json", items, {**context, "quick": quick})
        print(f"\n{'=' * 100}\nIssue 15 targets, this run ({out_dir / 'targets.json'}):\n")
        print(targets.table(items))
        if summaries:
            print("\n" + "\n".join(summaries))
        if failed:
            print(_banner(f"failed: {', '.join(failed)}"))
        return 1 if failed else 0
    finally:
        if owned:
            servers.close()


def _run_one(
    scenario: Scenario,
    servers: Servers,
    quick: bool,
    overrides: Mapping[str, Any] | None,
    context: Mapping[str, Any],
) -> tuple[dict[str, Any], str, Result | None]:
    params = scenario.parameters(quick, overrides)
    ctx = Context(scenario.name, params, quick, servers)
    started = datetime.now(UTC)
    doc: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "timestamp": started.isoformat(timespec="seconds"),
        "quick": quick,
        "machine": facts.machine(),
        **context,
        "parameters": params,
    }
    ctx.log(f"starting: {scenario.description}")
    t0 = time.perf_counter()
    try:
        result = scenario.run(ctx)
    except Exception:
        error = traceback.format_exc()
        print(error, flush=True)
        doc.update(ok=False, error=error, duration_s=round(time.perf_counter() - t0, 2))
        return doc, f"== {scenario.name}: FAILED (see the traceback above)", None
    doc["duration_s"] = round(time.perf_counter() - t0, 2)
    doc["machine"]["loadavg_after"] = facts.machine()["loadavg"]
    doc.update(_figures(result))
    return doc, format_table(scenario, result, doc["duration_s"]), result


def _missing_tools(scenarios: Sequence[Scenario]) -> str:
    """Checked before anything runs, so a long run does not fail half-way through."""
    needed = {
        tool: [s.name for s in scenarios if tool in s.needs] for s in scenarios for tool in s.needs
    }
    missing = [t for t in needed if shutil.which(t) is None]
    return "; ".join(
        (wrk.INSTALL_HINT if t == "wrk" else f"{t} is not installed")
        + f" (needed by {', '.join(needed[t])})"
        for t in missing
    )


def _figures(result: Result) -> dict[str, Any]:
    failed = [c for c in result.checks if not c.ok]
    return {
        "ok": not failed,
        "figures": {r.label: r.as_dict() for r in result.rows if not r.ceiling},
        "ceiling": {r.label: r.as_dict() for r in result.rows if r.ceiling},
        "ratio": result.ratios[0].as_dict() if result.ratios else None,
        "ratios": [r.as_dict() for r in result.ratios],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
        "notes": result.notes,
        **result.extra,
    }


_COLUMNS = ("variant", "n", "ops/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "err")


def _num(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:,.{digits}f}"


def format_table(scenario: Scenario, result: Result, duration_s: float) -> str:
    rows = [
        (
            r.label + (f" [{r.role or 'ceiling'}]" if r.ceiling else ""),
            str(r.count),
            _num(r.ops_per_s, 1),
            _num(r.mean_ms, 3),
            _num(r.p50_ms, 3),
            _num(r.p95_ms, 3),
            _num(r.p99_ms, 3),
            str(r.errors),
        )
        for r in result.rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  " + "  ".join(
            [first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        )

    out = [f"== {scenario.name} ({duration_s:.0f} s): {scenario.description}", line(_COLUMNS)]
    out += [line(r) for r in rows]
    for ratio in result.ratios:
        bounds = ", ".join(
            f"{k} {'≤' if ratio.higher_is_worse else '≥'} {v}"
            for k, v in (("target", ratio.target), ("goal", ratio.goal))
            if v is not None
        )
        verdict = f"  ({bounds}: {ratio.verdict()})" if bounds else ""
        out.append(f"  {ratio.name} = {ratio.value:.3f}{verdict}")
    definitions = dict.fromkeys(r.definition for r in result.ratios)
    out += [f"    ({d})" for d in definitions]
    out += [f"  {n}" for n in result.notes]
    out += [f"  CHECK FAILED: {c.name}: {c.detail}" for c in result.checks if not c.ok]
    return "\n".join(out)


def _banner(message: str) -> str:
    bar = "!" * 100
    return f"\n{bar}\n!!! {message}\n{bar}\n"
