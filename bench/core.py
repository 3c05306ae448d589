"""What a scenario is, what it is given and what it gives back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.servers import Servers
from bench.stats import Row


@dataclass(frozen=True)
class Scenario:
    """A benchmark: `run(ctx)` measures and returns a Result; it prints nothing itself
    except progress, and it cleans up what it created (scratch database, processes)."""

    name: str
    description: str
    run: Callable[[Context], Result]
    #: Parameters of the full run; `quick` overrides some of them for `--quick`.
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any] = field(default_factory=dict)
    #: External programs it cannot run without (e.g. "wrk"): checked before a run starts.
    needs: tuple[str, ...] = ()

    def parameters(self, quick: bool, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = {**self.defaults, **(self.quick if quick else {}), **(overrides or {})}
        if unknown := set(params) - set(self.defaults):
            raise ValueError(f"{self.name}: unknown parameters {sorted(unknown)}")
        return params


@dataclass
class Context:
    """What a scenario runs with: its parameters and the servers of this run."""

    name: str
    params: dict[str, Any]
    quick: bool
    servers: Servers

    def log(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)


@dataclass(frozen=True)
class Ratio:
    """A figure divided by its same-run ceiling; `higher_is_worse` says which way is bad."""

    name: str
    value: float
    definition: str
    target: float | None = None
    goal: float | None = None
    higher_is_worse: bool = True
    #: The key of the issue's target this ratio answers (bench/targets.py), if any;
    #: `figure` and `reference` are its two terms as printed in the closing table.
    headline: str = ""
    figure: str = ""
    reference: str = ""

    def verdict(self) -> str:
        def ok(limit: float) -> bool:
            return self.value <= limit if self.higher_is_worse else self.value >= limit

        if self.goal is not None and ok(self.goal):
            return "meets goal"
        if self.target is None:
            return ""
        return "meets target" if ok(self.target) else "MISSES TARGET"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "definition": self.definition,
            "target": self.target,
            "goal": self.goal,
            "verdict": self.verdict(),
            **({"figure": self.figure, "reference": self.reference} if self.headline else {}),
        }


@dataclass(frozen=True)
class Check:
    """A condition the run must meet for its figures to mean anything (exit status 1 if not)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Result:
    rows: list[Row]
    #: The first ratio is the scenario's headline.
    ratios: list[Ratio]
    checks: list[Check] = field(default_factory=list)
    #: Anything else worth keeping (plans, server settings), JSON-serialisable.
    extra: dict[str, Any] = field(default_factory=dict)
    #: Lines printed under the table (e.g. the key line of a plan).
    notes: list[str] = field(default_factory=list)
    #: Lines printed again after the closing table of targets (e.g. a CPU profile).
    summary: list[str] = field(default_factory=list)
