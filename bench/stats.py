"""Timing and summaries: perf_counter samples in, one table row out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted samples, linearly interpolated."""
    if not sorted_samples:
        return math.nan
    pos = (len(sorted_samples) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def percentiles(samples: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """{"p50": ..., "p95": ..., "p99": ...} of the samples (any unit)."""
    ordered = sorted(samples)
    return {f"p{q:g}": percentile(ordered, q) for q in qs}


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` took (time.perf_counter)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@dataclass
class Row:
    """One line of a scenario's table: a variant measured, or the ceiling beside it."""

    label: str
    count: int
    seconds: float
    ops_per_s: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int = 0
    ceiling: bool = False
    note: str = ""
    #: What a `ceiling` row is, when "ceiling" would mislead: e.g. "comparison" for
    #: the naive query a faster design is measured against (printed in the table).
    role: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(
    label: str,
    latencies_s: Sequence[float],
    wall_s: float | None = None,
    *,
    errors: int = 0,
    ceiling: bool = False,
    note: str = "",
    role: str = "",
) -> Row:
    """A Row from per-operation latencies (seconds).

    `wall_s` is the elapsed time of a concurrent run (throughput = count / wall);
    without it the operations ran one after another and their sum is the time.
    """
    count = len(latencies_s)
    busy = sum(latencies_s)
    seconds = wall_s if wall_s is not None else busy
    pct = percentiles([x * 1000 for x in latencies_s])
    return Row(
        label=label,
        count=count,
        seconds=seconds,
        ops_per_s=count / seconds if seconds > 0 else math.nan,
        mean_ms=busy / count * 1000 if count else math.nan,
        p50_ms=pct["p50"],
        p95_ms=pct["p95"],
        p99_ms=pct["p99"],
        errors=errors,
        ceiling=ceiling,
        note=note,
        role=role,
    )
