"""Invitations are mailed when SMTP_URL is set: once, after the commit, with the link;
a mail server that fails never fails the invitation (its link is in the answer)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_string
from typing import Any

import pytest

from tests.conftest import AppFactory, TenantHandle


class _Smtp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.messages: list[str] = []


class _Handler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: no extensions, every command accepted."""

    server: _Smtp

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 test")
        lines: list[str] | None = None
        while raw := self.rfile.readline():
            text = raw.decode().rstrip("\r\n")
            if lines is not None:
                if text == ".":
                    self.server.messages.append("\n".join(lines))
                    lines = None
                    self._say("250 queued")
                else:
                    lines.append(text[1:] if text.startswith("..") else text)
                continue
            verb = text[:4].upper()
            if verb == "DATA":
                lines = []
                self._say("354 go ahead")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


@pytest.fixture
def smtp() -> Iterator[_Smtp]:
    server = _Smtp()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _invite(client: Any, tenant: TenantHandle, email: str, key: str) -> Any:
    headers = {**tenant.headers, "Idempotency-Key": key}
    return client.post(
        "/api/v1/invitations", json={"email": email, "role": "viewer"}, headers=headers
    )


def test_an_invitation_is_mailed_once(
    make_app: AppFactory, smtp: _Smtp, tenant: TenantHandle
) -> None:
    port = smtp.server_address[1]
    app = make_app(smtp_url=f"smtp://127.0.0.1:{port}?from=erp@test.example")
    client = app.test_client()
    r = _invite(client, tenant, "invitee@mail.example", "mail-1")
    assert r.status_code == 201
    url = r.get_json()["url"]
    assert len(smtp.messages) == 1
    msg = message_from_string(smtp.messages[0])
    assert msg["To"] == "invitee@mail.example"
    assert msg["From"] == "erp@test.example"
    assert url in msg.get_payload(decode=True).decode()
    replay = _invite(client, tenant, "invitee@mail.example", "mail-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(smtp.messages) == 1  # a replay sends nothing


def test_a_failing_mail_server_does_not_fail_the_invitation(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens once closed
    app = make_app(smtp_url=f"smtp://127.0.0.1:{dead}")
    r = _invite(app.test_client(), tenant, "x@mail.example", "mail-2")
    assert r.status_code == 201
    assert r.get_json()["url"]
