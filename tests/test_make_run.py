"""`make run` runs `erp dev`: embedded PostgreSQL and Redis, migrations, a demo tenant,
the API and a worker, and a printed curl line that works as printed."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What `erp dev` does without; it makes its own SECRET_KEY (`erp serve` alone would refuse).
_UNSET = ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "ERP_APP_PASSWORD", "SECRET_KEY")


def _start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "erp.cli", "dev", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip().startswith("Try:"):
            return proc, lines
    proc.kill()
    pytest.fail("erp dev printed no curl line:\n" + "".join(lines[-40:]))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    proc.stdout.read()  # drain, so the child never blocks on a full pipe
    proc.stdout.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("erp dev did not stop on Ctrl-C")


def _run_curl_line(line: str) -> int:
    args = shlex.split(line.split("Try:", 1)[1])
    assert args[0] == "curl"
    header = args[args.index("-H") + 1]
    name, _, value = header.partition(": ")
    url = args[-1]
    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, headers={name: value})  # noqa: S310 (checked above)
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


def test_erp_dev_prints_a_curl_line_that_works_and_a_second_run_reuses_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / ".data"
    keys, secrets = [], []
    for _ in range(2):
        proc, lines = _start(data_dir, _free_port())
        try:
            curl = next(line for line in lines if line.strip().startswith("Try:"))
            assert _run_curl_line(curl) == 200
            keys.append(re.search(r"Bearer (\S+?)'", curl).group(1))  # type: ignore[union-attr]
        finally:
            _stop(proc)
        assert proc.returncode is not None
        secrets.append(json.loads((data_dir / "dev.json").read_text())["secret_key"])
    assert keys[0] == keys[1], "the second run reuses .data/ and its demo key"
    assert secrets[0] == secrets[1], "and its SECRET_KEY"
