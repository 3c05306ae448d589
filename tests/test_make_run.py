"""`make run` runs `erp dev`: embedded PostgreSQL and Redis, migrations, a demo tenant,
an operator, the API and a worker; printed lines that work as printed; `.data/env` for
a second shell; and the README's worked example, run as written against it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import story

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: What `erp dev` does without; it makes its own SECRET_KEY (`erp serve` alone would refuse).
SERVER_VARS = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "REDIS_URL",
    "ERP_APP_PASSWORD",
    "SECRET_KEY",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    lines: list[str]  # what it printed until it was ready
    home: Path  # where `make run` was typed: .data/ is under it
    asked: int  # the port it was asked for
    drain: threading.Thread | None = None

    def line(self, label: str) -> str:
        return next(x for x in self.lines if x.strip().startswith(label))

    def env_file(self) -> dict[str, str]:
        found = re.findall(r"^export (\w+)=(.*)$", (self.home / ".data" / "env").read_text(), re.M)
        return {name: shlex.split(value)[0] for name, value in found if name != "PATH"}


def _start(home: Path, port: int) -> Dev:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "erp.cli", "dev", "--port", str(port)],
        cwd=home,
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
        if line.startswith("Ctrl-C stops it"):
            # keep reading its logs, so the servers never block on a full pipe
            drain = threading.Thread(target=proc.stdout.read, daemon=True)
            drain.start()
            return Dev(proc, lines, home, port, drain)
    proc.kill()
    pytest.fail("erp dev did not finish starting:\n" + "".join(lines[-40:]))


def _stop(dev: Dev) -> None:
    if dev.proc.poll() is not None:
        return
    dev.proc.send_signal(signal.SIGINT)
    try:
        dev.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        dev.proc.kill()
        pytest.fail("erp dev did not stop on Ctrl-C")
    finally:
        if dev.drain is not None:
            dev.drain.join(timeout=10)
        assert dev.proc.stdout is not None
        dev.proc.stdout.close()


def _get(url: str, token: str) -> int:
    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _run_curl_line(line: str) -> int:
    args = shlex.split(line.split("Try:", 1)[1])
    assert args[0] == "curl"
    header = args[args.index("-H") + 1]
    name, _, value = header.partition(": ")
    assert name == "Authorization"
    return _get(args[-1], value.removeprefix("Bearer "))


def _shell(dev: Dev, command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a fresh bash that knows nothing but what `source .data/env` gives it."""
    return subprocess.run(
        ["bash", "-c", f"set -e; source .data/env; {command}"],
        cwd=dev.home,
        env={"PATH": "/usr/bin:/bin", "HOME": str(dev.home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """`make run` in a fresh checkout-like directory, asked for a port that is taken."""
    home = tmp_path_factory.mktemp("checkout")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = _start(home, int(taken.getsockname()[1]))
    try:
        yield started
    finally:
        _stop(started)


def test_a_taken_port_is_said_and_every_line_names_the_port_taken(dev: Dev) -> None:
    said = dev.line("port ")
    assert said.startswith(f"port {dev.asked} is taken; using "), said
    port = int(said.split()[-1])
    assert port != dev.asked
    # the live stream's line (and `erp stream`'s own log) name its port (ERP_STREAM_URL)
    stream = dev.env_file()["ERP_STREAM_URL"]
    stream_port = int(stream.rsplit(":", 1)[1])
    api_lines = "".join(line for line in dev.lines if "Live:" not in line)
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)", api_lines)
    assert len(urls) >= 4
    assert {int(u) for u in urls} - {stream_port} == {port}
    assert dev.env_file()["ERP_URL"] == f"http://127.0.0.1:{port}"
    assert f"{stream}/api/v1/inventory/events" in dev.line("Live:")
    assert not stream.endswith(f":{dev.asked}")


def test_the_printed_key_curl_line_and_operator_token_work(dev: Dev) -> None:
    assert _run_curl_line(dev.line("Try:")) == 200
    token = dev.line("Operator:").split()[1]
    base = dev.env_file()["ERP_URL"]
    assert _get(f"{base}/ops/v1/tenants", token) == 200
    forged = token[:-1] + ("y" if token.endswith("x") else "x")  # never the token itself
    assert _get(f"{base}/ops/v1/tenants", forged) == 401
    assert dev.env_file()["ERP_OPERATOR_TOKEN"] == token


def test_the_printed_sign_in_url_signs_the_demo_owner_in(dev: Dev) -> None:
    """Development only: no identity provider needed to see the console's home page."""
    import http.cookiejar

    url = dev.line("Sign in:").split()[2]
    assert url.startswith(dev.env_file()["ERP_URL"] + "/auth/dev-login?")
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url, timeout=10) as resp:
        page = resp.read().decode()
        assert resp.url.endswith("/app/")
    assert "owner@demo.example" in page
    assert "demo" in page
    me = opener.open(dev.env_file()["ERP_URL"] + "/api/v1/me", timeout=10)
    assert json.loads(me.read())["principal"]["kind"] == "user"


def test_data_env_gives_a_second_shell_every_erp_command(dev: Dev) -> None:
    path = dev.home / ".data" / "env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "it holds secrets"
    names = set(dev.env_file())
    assert {"DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= names

    tenants = _shell(dev, "erp tenants list")
    assert tenants.returncode == 0, tenants.stderr
    assert "\tdemo\tactive\t" in tenants.stdout
    operators = _shell(dev, "erp operators list")
    assert operators.returncode == 0, operators.stderr
    assert "\tdev@localhost\tactive\t" in operators.stdout
    created = _shell(dev, "erp keys create demo --name from-env --scope ledger:read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert key.startswith("erp_test_")
    assert _get(dev.env_file()["ERP_URL"] + "/api/v1/me", key) == 200
    email = "second@example.com"
    made = _shell(dev, f"erp operators create {email} && erp operators revoke {email}")
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1].startswith("revoked\t")


def test_the_readme_story_runs_as_written(dev: Dev, tmp_path: Path) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is missing; .ci/run installs it")
            pytest.skip(f"the README's story needs {tool}")
    steps = story.story_steps((ROOT / "README.md").read_text())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(dev.home)}
    outcomes = story.run(steps, dev.home, env, tmp_path)
    assert len(outcomes) == len(steps)
    problems = [
        f"step {i}:\n{step.code}--- differs from the README:\n  "
        + "\n  ".join(found)
        + f"\n--- it answered:\n{got.output}"
        for i, (step, got) in enumerate(zip(steps, outcomes, strict=True))
        if (found := story.check(step, got))
    ]
    assert not problems, "\n\n".join(problems)


def test_a_second_run_reuses_data_key_and_token(dev: Dev) -> None:
    """Last in this module: it stops the shared `make run` and starts it again."""
    first_key, first_token = dev.line("API key:").split()[2], dev.line("Operator:").split()[1]
    first_secret = dev.env_file()["SECRET_KEY"]
    _stop(dev)
    again = _start(dev.home, _free_port())
    try:
        assert again.line("API key:").split()[2] == first_key
        assert again.line("Operator:").split()[1] == first_token
        assert _run_curl_line(again.line("Try:")) == 200
        assert again.env_file()["ERP_OPERATOR_TOKEN"] == first_token
        assert again.env_file()["SECRET_KEY"] == first_secret, "and its SECRET_KEY"
    finally:
        _stop(again)
