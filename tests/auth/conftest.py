"""A real OpenID provider (oidc-provider, on Node) and the app served over HTTP, so a
requests session follows every redirect between them as a browser would."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from werkzeug.serving import make_server

from erp import create_app
from erp.config import Settings
from erp.extensions import db, queue
from erp.http import ErpFlask
from tests.conftest import TenantHandle, make_tenant

HERE = Path(__file__).parent / "oidc_provider"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").exists():
        msg = "node and tests/auth/oidc_provider/node_modules (npm ci) are needed"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)  # under CI a missing tool fails, never skips
        pytest.skip(msg)
    return node


@dataclass
class Idp:
    issuer: str
    clients: dict[str, str]  # client id -> secret


@dataclass
class Site:
    base: str
    app: ErpFlask
    idp: Idp


class _InFlight:
    """The WSGI app, counting requests in progress (request threads are daemons)."""

    def __init__(self, app: ErpFlask) -> None:
        self.app = app
        self.count = 0
        self.lock = threading.Condition()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        with self.lock:
            self.count += 1
        try:
            # the body is small and read at once, so the request is over on return
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            with self.lock:
                self.count -= 1
                self.lock.notify_all()

    def wait_idle(self, timeout: float = 10) -> None:
        with self.lock:
            self.lock.wait_for(lambda: self.count == 0, timeout)


@pytest.fixture(scope="module")
def site(settings: Settings, app: ErpFlask) -> Iterator[Site]:
    """`app` first: the session's app stays the database's default binding (the one
    used outside any app context), never this module's, which is disposed."""
    node = _node()
    app_port, idp_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{app_port}"
    clients = {"platform": "platform-secret", "tenant-b": "tenant-b-secret"}
    env = {
        **os.environ,
        "PORT": str(idp_port),
        "CLIENTS": json.dumps(
            [
                {
                    "client_id": cid,
                    "client_secret": secret,
                    "redirect_uris": [f"{base}/auth/callback"],
                    "post_logout_redirect_uris": [f"{base}/auth/signed-out"],
                }
                for cid, secret in clients.items()
            ]
        ),
    }
    proc = subprocess.Popen(
        [node, "provider.mjs"],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    issuer = line.split()[1]
    served = create_app(
        settings.replace(
            environment="development",
            oidc_issuer=issuer,
            oidc_client_id="platform",
            oidc_client_secret=clients["platform"],
        )
    )
    counted = _InFlight(served)
    server = make_server("127.0.0.1", app_port, counted, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(base, served, Idp(issuer, clients))
    finally:
        server.shutdown()
        server.server_close()
        counted.wait_idle()  # no request thread still holds a pooled connection
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        with served.app_context():
            db.dispose()
            queue.redis.close()


def member(site: Site, tenant: uuid.UUID, email: str, role: str, issuer: str | None = None) -> Any:
    """A member of `tenant` whose identity is (issuer, email) at the test provider."""
    from erp.auth import services

    with site.app.app_context():
        identity = services.sign_in_identity(issuer or site.idp.issuer, email, email, "")
        return db.unit_of_work(
            lambda s: services.add_member(s, identity, email, "", role).id, tenant=tenant
        )


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.I)
_PROMPT = re.compile(r'name="prompt" value="(\w+)"')


def through_provider(http: requests.Session, r: requests.Response, login: str) -> requests.Response:
    """Submit the provider's real login and consent forms until it sends us back."""
    for _ in range(5):
        form = _FORM.search(r.text)
        prompt = _PROMPT.search(r.text)
        if not r.url.startswith("http://127.0.0.1") or form is None or prompt is None:
            return r
        data = {"prompt": prompt.group(1)}
        if data["prompt"] == "login":
            data.update(login=login, password="any-password")
        r = http.post(urljoin(r.url, unescape(form.group(1))), data=data)
    return r


def sign_in(site: Site, http: requests.Session, query: str, login: str) -> requests.Response:
    r = http.get(f"{site.base}/auth/login?{query}")
    return through_provider(http, r, login)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def tenant_a(client: Any, ops_headers: dict[str, str]) -> TenantHandle:
    return make_tenant(client, ops_headers)


@pytest.fixture
def tenant_b(client: Any, ops_headers: dict[str, str], site: Site) -> TenantHandle:
    """A tenant with its own SSO connection (client `tenant-b`, domain b-<slug>.example)."""
    t = make_tenant(client, ops_headers)
    r = client.put(
        "/api/v1/sso-connection",
        json={
            "issuer": site.idp.issuer,
            "client_id": "tenant-b",
            "client_secret": site.idp.clients["tenant-b"],
            "allowed_domains": [f"{t.slug}.example"],
        },
        headers=t.headers,
    )
    assert r.status_code == 200, r.get_json()
    return t
