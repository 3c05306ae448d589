"""The API under gunicorn as a child process, and a bounded HTTP load against it.

The load generator talks to 127.0.0.1 only: threads, one keep-alive
http.client connection each, stopping at a request count or a deadline,
whichever comes first.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import ROOT
from bench.stats import Row, summarize

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    port: int
    log: Path
    #: The gunicorn master (`erp serve` runs gunicorn in its own process).
    pid: int

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes' pids (children of the master), oldest first."""
        return children(self.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    workers: int = 2,
    threads: int | None = None,
    ready_s: float = 60,
    *,
    worker_class: str | None = None,
    module: str = "erp.cli",
    command: str = "serve",
) -> Iterator[Server]:
    """`erp serve` on a free port of 127.0.0.1, ready (GET /readyz is 200) when yielded.

    `env` is added to this process's environment (DATABASE_URL, REDIS_URL,
    SECRET_KEY...); MIGRATION_DATABASE_URL is removed: the API never needs it.
    `threads` and `worker_class` None keep `erp serve`'s defaults. The server's log
    goes to a file. `module` is run as `python -m <module> serve ...` (the RLS
    ceiling's bench-only server takes `erp serve`'s options); `command` "stream" runs
    `erp stream` (the live streams' process: no --worker-class) instead.
    """
    port = free_port()
    args = [sys.executable, "-m", module, command, "--host", LOCALHOST, "--port", str(port)]
    args += ["--workers", str(workers)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if worker_class is not None:
        args += ["--worker-class", worker_class]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    child_env.pop("MIGRATION_DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as tmp:
        log = Path(tmp) / "gunicorn.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, env=child_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server(port, log, proc.pid)
        try:
            _wait_ready(server, proc, ready_s, workers)
            yield server
        finally:
            _stop(proc)


def _wait_ready(
    server: Server, proc: subprocess.Popen[bytes], timeout_s: float, workers: int
) -> None:
    """Ready: /readyz answers 200 and every worker has started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{server.tail()}")
        status, _ = get(server.port, "/readyz")
        if status == 200 and len(server.workers()) >= workers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn was not ready within {timeout_s:.0f} s:\n{server.tail()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        # gunicorn's quick shutdown: the load is over, nothing is in flight
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def children(pid: int) -> list[int]:
    """Child processes of `pid`, oldest first (from /proc: Linux only)."""
    found: list[tuple[int, int]] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name (field 2) may hold spaces: split after its closing ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited meanwhile
        if int(fields[1]) == pid:  # ppid
            found.append((int(fields[19]), int(stat.parent.name)))  # start time, pid
    return [p for _, p in sorted(found)]


def cpu_seconds(pid: int) -> float:
    """CPU time of process `pid`, all its threads: the sum of each thread's on-CPU
    nanoseconds (/proc/<pid>/task/*/schedstat), finer than utime+stime's clock ticks."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that exited meanwhile
    return total / 1e9


def get(port: int, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection; status 0 when nothing answers."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect: int = 200


class Client:
    """One keep-alive connection to 127.0.0.1:`port`; a connection the server closed
    is reopened and the request sent again, once (counted in `reconnects`)."""

    def __init__(self, port: int, timeout_s: float = 30) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.reconnects = 0
        self._conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout_s)

    def _reopen(self) -> None:
        self._conn.close()
        self._conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=self.timeout_s)

    def send(self, req: Request) -> tuple[int, bytes]:
        """The status and body; status 0 (body: the exception) when no answer came."""
        try:
            return _send(self._conn, req)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.reconnects += 1
            self._reopen()
        except (OSError, http.client.HTTPException) as exc:
            self._reopen()
            return 0, repr(exc).encode()
        try:
            return _send(self._conn, req)
        except (OSError, http.client.HTTPException) as exc:
            self._reopen()
            return 0, repr(exc).encode()

    def close(self) -> None:
        self._conn.close()


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    reconnects: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: CPU seconds the load generator itself used (all its threads): on a small
    #: machine the client competes with the server for the same cores.
    client_cpu_s: float = 0.0

    def add(self, other: LoadResult) -> None:
        """Fold in another run of the same request (rounds of one variant)."""
        self.latencies_s += other.latencies_s
        self.wall_s += other.wall_s
        self.errors += other.errors
        self.reconnects += other.reconnects
        self.client_cpu_s += other.client_cpu_s
        self.error_samples = (self.error_samples + other.error_samples)[:5]

    def row(self, label: str, *, ceiling: bool = False, note: str = "") -> Row:
        return summarize(
            label, self.latencies_s, self.wall_s, errors=self.errors, ceiling=ceiling, note=note
        )


def http_load(
    port: int,
    request: Request | Callable[[int], Request],
    *,
    threads: int,
    duration_s: float,
    max_requests: int = 10_000_000,
) -> LoadResult:
    """`threads` keep-alive clients sending `request` (or `request(i)` for the i-th one)
    to 127.0.0.1:`port` until `max_requests` were sent or `duration_s` passed.

    Latency is per request, from send to the last byte of the body; a response
    with another status than `request.expect` is an error.
    """
    make = request if callable(request) else (lambda _i: request)
    counter = itertools.count()
    start = threading.Barrier(threads + 1)
    lock = threading.Lock()
    total = LoadResult()
    deadline = [0.0]

    def client() -> None:
        mine = LoadResult()
        conn = Client(port)
        start.wait()
        try:
            while time.perf_counter() < deadline[0]:
                i = next(counter)
                if i >= max_requests:
                    break
                req = make(i)
                t0 = time.perf_counter()
                status, body = conn.send(req)
                mine.latencies_s.append(time.perf_counter() - t0)
                if status != req.expect:
                    mine.errors += 1
                    if len(mine.error_samples) < 3:
                        mine.error_samples.append(
                            f"{req.method} {req.path} -> {status}: {body[:200]!r}"
                        )
        finally:
            conn.close()
            mine.reconnects = conn.reconnects
            with lock:
                total.add(mine)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    cpu = time.process_time()
    began = time.perf_counter()
    deadline[0] = began + duration_s
    start.wait()
    for w in workers:
        w.join()
    total.wall_s = time.perf_counter() - began
    total.client_cpu_s = time.process_time() - cpu
    return total


def _send(conn: http.client.HTTPConnection, req: Request) -> tuple[int, bytes]:
    conn.request(req.method, req.path, body=req.body, headers=dict(req.headers))
    resp = conn.getresponse()
    return resp.status, resp.read()
