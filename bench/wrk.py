"""HTTP load with `wrk` (a C event loop, Lua for the request bodies), not Python threads.

A Python load generator shares the GIL-bound CPU of a 2-core machine with the
server it measures and caps what it can send; wrk sends at a fraction of that
cost. Every script ends with the same `done` hook, which prints one JSON line
(`WRK_JSON {...}`) that `run` parses: counts, errors by kind and latency
percentiles in microseconds.

wrk is a Debian/Ubuntu package (`apt-get install wrk`); `require()` says so when
it is missing.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Row

INSTALL_HINT = (
    "wrk is not installed: the HTTP scenarios drive load with it. "
    "Install it with `sudo apt-get install wrk` (Debian/Ubuntu; `brew install wrk` on macOS), "
    "or run only the scenarios that do not need it"
)
_MARK = "WRK_JSON "

#: Printed by every script when wrk finishes (latency figures are microseconds).
_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean_us":%.1f,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d}\n',
    "WRK_JSON ", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency.mean, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def binary() -> str | None:
    return shutil.which("wrk")


def require() -> str:
    """The wrk binary, or a RuntimeError saying how to install it."""
    found = binary()
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


def _lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal here


def _lua_headers(headers: Mapping[str, str]) -> str:
    return (
        "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()) + "}"
    )


def static_script(method: str, headers: Mapping[str, str], body: str | None = None) -> str:
    """The same request every time (wrk builds it once)."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    return "\n".join(lines) + "\n" + _DONE


def paths_script(paths: Sequence[str], headers: Mapping[str, str], seed: int = 1) -> str:
    """GET one of `paths` at random per request (e.g. accounts by id)."""
    items = ", ".join(_lua_string(p) for p in paths)
    return (
        f"""
local paths = {{{items}}}
local headers = {_lua_headers(headers)}
local n = 0
setup = function(thread) n = n + 1; thread:set("tid", n) end
init = function(args) math.randomseed({seed} * 1000 + (tid or 0)) end
request = function() return wrk.format("GET", paths[math.random(#paths)], headers) end
"""
        + _DONE
    )


def postings_script(
    path: str,
    headers: Mapping[str, str],
    debit_accounts: Sequence[str],
    credit_accounts: Sequence[str],
    *,
    description: str,
    currency: str,
    max_amount: int,
    idempotency_key: bool = False,
    seed: int = 1,
) -> str:
    """A two-leg balanced posting per request: a random debit account, a random credit
    account, a random amount; with `idempotency_key`, a key unique to the request."""
    debits = ", ".join(_lua_string(a) for a in debit_accounts)
    credits = ", ".join(_lua_string(a) for a in credit_accounts)
    prefix = uuid.uuid4().hex[:12]
    head = '{"description":' + json.dumps(description) + ',"entries":[{"account_id":"'
    key_line = (
        'h["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, count)'
        if idempotency_key
        else ""
    )
    return (
        f"""
local debits = {{{debits}}}
local credits = {{{credits}}}
local base = {_lua_headers(headers)}
local run = {_lua_string(prefix)}
local head = {_lua_string(head)}
local n = 0
local count = 0
setup = function(thread) n = n + 1; thread:set("tid", n) end
init = function(args) math.randomseed({seed} * 1000 + (tid or 0)) end
request = function()
  count = count + 1
  local amount = math.random(1, {max_amount})
  local h = {{}}
  for k, v in pairs(base) do h[k] = v end
  {key_line}
  local body = head .. debits[math.random(#debits)] .. '","amount":' .. amount ..
    ',"currency":"{currency}"}},{{"account_id":"' .. credits[math.random(#credits)] ..
    '","amount":-' .. amount .. ',"currency":"{currency}"}}]}}'
  return wrk.format("POST", {_lua_string(path)}, h, body)
end
"""
        + _DONE
    )


@dataclass
class WrkResult:
    """One wrk run: completed responses, their latency, and errors by kind."""

    requests: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    #: Responses whose status is not 2xx/3xx.
    status_errors: int
    #: Socket errors (connect, read, write) and timeouts.
    socket_errors: int
    #: CPU seconds wrk itself used (the load generator shares the machine's cores).
    client_cpu_s: float
    connections: int
    command: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    @property
    def ops_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")


def run(
    url: str,
    script: str,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    timeout_s: float = 30,
) -> WrkResult:
    """wrk against `url` for `duration_s` (whole seconds, at least 1) with `script`."""
    wrk = require()
    seconds = max(1, round(duration_s))
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="erp-bench-wrk-") as tmp:
        lua = Path(tmp) / "load.lua"
        lua.write_text(script)
        args = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        args += ["--timeout", f"{max(1, round(timeout_s))}s", "-s", str(lua), url]
        started, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=seconds + timeout_s + 60
        )
        usage, wall = _children_cpu() - cpu, time.perf_counter() - started
    out, err = proc.stdout, proc.stderr
    found = [line for line in out.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({proc.returncode}, {wall:.1f} s):\n{out[-2000:]}{err}")
    doc: dict[str, Any] = json.loads(found[-1][len(_MARK) :])
    return WrkResult(
        requests=int(doc["requests"]),
        seconds=doc["duration_us"] / 1e6,
        mean_ms=doc["mean_us"] / 1000,
        p50_ms=doc["p50_us"] / 1000,
        p95_ms=doc["p95_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        status_errors=int(doc["status"]),
        socket_errors=sum(int(doc[k]) for k in ("connect", "read", "write", "timeout")),
        client_cpu_s=usage,
        connections=connections,
        command=args[:-1],
    )


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children: wrk's, once it has exited (the
    servers and posting processes still run, so they are not in it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class WrkSeries:
    """Several wrk runs of one variant (rounds), summed."""

    runs: list[WrkResult] = field(default_factory=list)

    def add(self, r: WrkResult) -> None:
        self.runs.append(r)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def ops_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def client_cores(self) -> float:
        return sum(r.client_cpu_s for r in self.runs) / self.seconds if self.seconds else 0.0

    def row(self, label: str, *, ceiling: bool = False, role: str = "") -> Row:
        """A table row; latency figures are request-weighted means of the runs' own
        (wrk reports percentiles per run, not the samples)."""
        n = self.requests

        def weighted(attr: str) -> float:
            if not n:
                return float("nan")
            return float(sum(getattr(r, attr) * r.requests for r in self.runs)) / n

        return Row(
            label=label,
            count=n,
            seconds=self.seconds,
            ops_per_s=self.ops_per_s,
            mean_ms=weighted("mean_ms"),
            p50_ms=weighted("p50_ms"),
            p95_ms=weighted("p95_ms"),
            p99_ms=weighted("p99_ms"),
            errors=self.errors,
            ceiling=ceiling,
            role=role,
            note="wrk; percentiles: request-weighted mean of each round's",
        )
