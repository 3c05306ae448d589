"""A CPU profile of one API worker under load: py-spy attached to its pid.

`py-spy record --gil --function --format raw` samples the worker's Python stacks
(100 Hz by default) without stopping it (`--nonblocking`), keeping only the
samples of the thread that holds the GIL: in one worker process that is where
its interpreter's CPU goes, and samples where every thread waits (on PostgreSQL,
Redis or the socket) are left out. The raw (collapsed) output is one line per
distinct stack, `frame;frame;...;leaf count`, from which:

- **self**: samples with the function as the leaf (running its own code or a C call
  that holds the GIL): the functions that burn the CPU;
- **cumulative**: samples with the function anywhere on the stack (counted once
  per sample): the parts of the request that cost the most, callees included
  (printed for the app's own frames, erp/);
- **by package**: self samples summed by top-level package (sqlalchemy, psycopg,
  flask, marshmallow, json, logging, erp...).

py-spy needs ptrace rights over the worker (root, or the same user with
kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE in a container). Without them
`record` returns a `Profile` whose `error` says why, and the run goes on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
#: Path prefixes cut from file names, so frames read `pkg/module.py`.
_PREFIXES = re.compile(r"^.*/(site-packages|dist-packages|lib/python3\.\d+|platform)/")


def binary() -> str | None:
    """py-spy next to this interpreter (the dev extra installs it), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    if here.is_file():
        return str(here)
    return shutil.which("py-spy")


@dataclass
class Profile:
    samples: int = 0
    seconds: float = 0.0
    rate_hz: int = 100
    self_counts: Counter[str] = field(default_factory=Counter)
    cumulative_counts: Counter[str] = field(default_factory=Counter)
    error: str = ""
    command: list[str] = field(default_factory=list)

    @property
    def gil_share(self) -> float:
        """Share of the window the worker held the GIL (its interpreter was busy)."""
        possible = self.seconds * self.rate_hz
        return self.samples / possible if possible else 0.0

    def top(self, n: int = 10) -> dict[str, list[dict[str, Any]]]:
        """The `n` frames with the most self samples; the `n` of the app's own code
        (erp/) with the most cumulative ones (outside it, the outer frames of every
        request, gunicorn's and Flask's, would fill the list); self samples by package."""

        def rows(counts: Counter[str] | dict[str, int], k: int) -> list[dict[str, Any]]:
            ordered = sorted(counts.items(), key=lambda kv: -kv[1])[:k]
            return [
                {"frame": frame, "samples": c, "share": round(c / self.samples, 4)}
                for frame, c in ordered
            ]

        return {
            "self": rows(self.self_counts, n),
            "cumulative_app": rows(self.app_counts(), n),
            "self_by_package": rows(self.package_counts(), n),
        }

    def package_counts(self) -> Counter[str]:
        """Self samples summed by top-level package."""
        packages: Counter[str] = Counter()
        for frame, c in self.self_counts.items():
            packages[package(frame)] += c
        return packages

    def app_counts(self) -> dict[str, int]:
        """Cumulative samples of the app's own frames (erp/), most first."""
        return {f: c for f, c in self.cumulative_counts.most_common() if "(erp/" in f}

    def as_dict(self, n: int = 10) -> dict[str, Any]:
        if self.error:
            return {"error": self.error, "command": self.command}
        return {
            "samples": self.samples,
            "seconds": self.seconds,
            "rate_hz": self.rate_hz,
            "gil_share": round(self.gil_share, 3),
            "command": self.command,
            "top": self.top(n),
        }

    def lines(self, title: str, n: int = 10) -> list[str]:
        """The top `n` by self samples, the app's top `n` by cumulative samples and the
        self samples by package, for the console."""
        if self.error:
            return [f"{title}: no profile ({self.error})"]
        top = self.top(n)
        return [
            f"{title}: {self.samples} samples in {self.seconds:.0f} s at {self.rate_hz} Hz "
            f"(GIL held {self.gil_share:.0%} of the time)",
            f"  self, top {n} frames:",
            *(f"    {r['share']:6.1%}  {r['frame']}" for r in top["self"]),
            f"  cumulative, top {n} frames of erp/:",
            *(f"    {r['share']:6.1%}  {r['frame']}" for r in top["cumulative_app"]),
            "  self by package: "
            + ", ".join(f"{r['frame']} {r['share']:.0%}" for r in top["self_by_package"]),
        ]


def package(frame: str) -> str:
    """`f (sqlalchemy/orm/session.py)` -> `sqlalchemy`; `f (json/encoder.py)` -> `json`."""
    m = _FRAME.match(frame)
    if m is None:
        return "?"
    first = m["file"].split("/", 1)[0]
    return first.removesuffix(".py") or "?"


def frame_name(raw: str) -> str:
    """`post (/x/site-packages/flask/views.py:12)` -> `post (flask/views.py)`."""
    m = _FRAME.match(raw.strip())
    if m is None:
        return raw.strip()
    return f"{m['func']} ({_PREFIXES.sub('', m['file'])})"


def parse_raw(lines: Iterable[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self counts, cumulative counts) of py-spy's raw (collapsed) output."""
    total = 0
    self_counts: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    return total, self_counts, cumulative


def record(pid: int, seconds: float, load: Callable[[], object], rate_hz: int = 100) -> Profile:
    """py-spy on `pid` for `seconds` while `load()` runs (it should last as long).

    The load starts once py-spy says it samples: attaching (reading the target's
    memory maps and symbols) can take seconds on a busy machine, and a load that
    ran meanwhile would leave an idle worker to sample. A Profile with the reason
    when py-spy is missing or cannot attach.
    """
    spy = binary()
    if spy is None:
        return Profile(error="py-spy is not installed (pip install py-spy; the dev extra has it)")
    tmp = Path(tempfile.mkdtemp(prefix="erp-bench-pyspy-"))
    out = tmp / "profile.txt"
    args = [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    args += ["--rate", str(rate_hz), "--gil", "--function", "--nonblocking", "--format", "raw"]
    try:
        proc = subprocess.Popen(
            [*args, "--output", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        said = _until_sampling(proc)
        if proc.poll() is None:
            load()
        try:
            rest, _ = proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        said += [line for line in (rest or "").splitlines() if line.strip()]
        if proc.returncode != 0 or not out.is_file():
            reason = next((x for x in said if x.startswith("Error")), said[-1] if said else "")
            hint = " (py-spy needs ptrace rights: root, or kernel.yama.ptrace_scope=0)"
            return Profile(error=(reason or f"exit {proc.returncode}") + hint, command=args)
        samples, self_counts, cumulative = parse_raw(out.read_text().splitlines())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    profile = Profile(samples, seconds, rate_hz, self_counts, cumulative, command=args)
    if samples == 0:
        profile.error = "py-spy recorded no sample (the worker held no GIL: was it idle?)"
    return profile


def _until_sampling(proc: subprocess.Popen[str], timeout_s: float = 60) -> list[str]:
    """py-spy's lines up to the one saying it samples (or its exit, or the timeout)."""
    said: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:  # exited
            break
        said.append(line.rstrip())
        if "Sampling process" in line:
            break
    return said
