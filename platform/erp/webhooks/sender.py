"""One HTTP POST to an endpoint, with the guards API.md promises.

- The host is resolved here, every attempt, and each address checked: loopback,
  private, link-local (metadata included), shared, multicast, reserved and unspecified
  addresses are refused unless the host is in WEBHOOK_ALLOWED_HOSTS. The connection
  goes to the address that was checked (no second lookup, so no DNS rebinding).
- Plain http only for allowed hosts; redirects are never followed (a 3xx is a failed
  attempt with error `redirect`).
- Connect timeout 5 s; the whole attempt 15 s; the first 4 KiB of the answer kept.
- A delivery job's attempts to one endpoint share a kept-alive connection (`Poster`),
  still resolving and checking the host at every attempt; between jobs the process
  keeps the open connections (`IDLE`), so the next job to that host does not connect
  again.
"""

from __future__ import annotations

import atexit
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
BODY_KEPT = 4096

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to; `error` is None exactly when it succeeded."""

    status: int | None
    body: str | None
    error: str | None  # timeout, connection, refused_address, redirect, http_status
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.error is None


class RefusedAddress(Exception):
    """The host is, or resolves to, an address deliveries may not reach."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (ip.version == 4 and ip in _SHARED)
        or ip in _METADATA
    )


def literal_refused(host: str, scheme: str, allowed: tuple[str, ...]) -> str | None:
    """Why a URL's host (and scheme) may not be used, judged without DNS; or None."""
    host = host.lower()
    if host in allowed:
        return None
    if scheme != "https":
        return "Only https URLs are allowed."
    try:
        public = is_public(host)
    except ValueError:  # a name (localhost too): judged at each attempt, after resolving it
        return None
    return None if public else "The address is not public."


def resolve(host: str, port: int, allowed: tuple[str, ...]) -> list[tuple[int, str]]:
    """(family, address) pairs of `host`, each checked; raises RefusedAddress."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found = [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos]
    if host.lower() not in allowed:
        for _, address in found:
            if not is_public(address):
                raise RefusedAddress(address)
    return found


def _open(address: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the checked address; no Nagle delay (as urllib3 and curl):
    on a kept-alive connection, a request sent in two writes would otherwise wait for
    the receiver's delayed ACK (40 ms) before its second part leaves."""
    sock = socket.create_connection((address, port), CONNECT_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _open(self._address, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = _open(self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
#: After the first 4 KiB, at most this much more of an answer is read so that its
#: connection can carry the next attempt; a longer answer closes the connection.
DRAIN_LIMIT = 65536


class Poster:
    """POSTs to endpoints over kept-alive connections: one open connection, reused by
    the next attempt to the same scheme, host and port while the host still resolves
    to the address it was opened to (a delivery job POSTs its batch to one endpoint:
    no TCP or TLS handshake, and no new receiver connection, per message).

    Every attempt still resolves the host and checks each address (API.md); a
    connection the receiver closed while idle is reopened once (the message may then
    arrive twice: at least once, same webhook-id).
    """

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self._conn: http.client.HTTPConnection | None = None
        self._key: tuple[str, str, int, str] | None = None
        #: Connections opened (the first attempt's and each reopening).
        self.opened = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._key = None, None

    @property
    def origin(self) -> tuple[str, str, int] | None:
        """(scheme, host, port) of the open connection; None when none is open."""
        if self._conn is None or self._key is None:
            return None
        return self._key[0], self._key[1], self._key[2]

    def __enter__(self) -> Poster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(
        self, scheme: str, host: str, port: int, addresses: list[str]
    ) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection if it fits (and True), else a new one (and False)."""
        if self._conn is not None and self._key is not None:
            k_scheme, k_host, k_port, k_address = self._key
            if (k_scheme, k_host, k_port) == (scheme, host, port) and k_address in addresses:
                return self._conn, True
        self.close()
        conn_cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        self._conn = conn_cls(host, port, addresses[0], TOTAL_TIMEOUT)
        self._key = (scheme, host, port, addresses[0])
        self.opened += 1
        return self._conn, False

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """POST `body` to `url`; never raises for what the network or the receiver does."""
        started = time.monotonic()

        def done(status: int | None, text: str | None, error: str | None) -> Outcome:
            ms = int((time.monotonic() - started) * 1000)
            if error is None and ms > TOTAL_TIMEOUT * 1000:
                error = "timeout"
            return Outcome(status, text, error, ms)

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if literal_refused(host, parts.scheme, self.allowed) is not None:
            return done(None, None, "refused_address")
        try:
            addresses = [address for _, address in resolve(host, port, self.allowed)]
        except RefusedAddress:
            return done(None, None, "refused_address")
        except (OSError, UnicodeError):
            return done(None, None, "connection")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            try:
                conn, reused = self._connection(parts.scheme, host, port, addresses)
                resp, text = self._exchange(conn, target, body, headers)
            except _STALE:
                if not reused:
                    raise
                self.close()  # closed by the receiver while idle: once more, afresh
                conn, _ = self._connection(parts.scheme, host, port, addresses)
                resp, text = self._exchange(conn, target, body, headers)
        except TimeoutError:
            self.close()
            return done(None, None, "timeout")
        except (OSError, http.client.HTTPException):
            self.close()
            return done(None, None, "connection")
        if 200 <= resp.status < 300:
            return done(resp.status, text, None)
        if 300 <= resp.status < 400:
            return done(resp.status, text, "redirect")
        return done(resp.status, text, "http_status")

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> tuple[http.client.HTTPResponse, str]:
        conn.request("POST", target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        text = resp.read(BODY_KEPT).decode("utf-8", errors="replace").replace("\x00", "")
        if not resp.isclosed():
            resp.read(DRAIN_LIMIT)  # the rest of a longer answer, so the connection can go on
        if not resp.isclosed() or resp.will_close:
            self.close()
        return resp, text


def post(url: str, body: bytes, headers: Mapping[str, str], allowed: tuple[str, ...]) -> Outcome:
    """One POST on a connection of its own (closed after it)."""
    with Poster(allowed) as poster:
        return poster.post(url, body, headers)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (
        parts.scheme,
        parts.hostname or "",
        parts.port or (443 if parts.scheme == "https" else 80),
    )


class IdlePosters:
    """Open connections between delivery jobs, per process and per origin (scheme,
    host, port): a job takes them when it starts sending to an endpoint and gives them
    back when it ends, so a busy endpoint is not connected to (TCP, TLS) by every job,
    each push-path job lasting half a second. The receiver's side: a new connection per
    job and attempt in flight was a SYN per 30 ms at 200 events/s, and a receiver with
    a short accept queue dropped some (a second's SYN retry: the tail of
    bench/scenarios/webhooks_latency.py).

    A connection idle over IDLE_S is closed, never reused: shorter than common
    servers' keep-alive (Node.js closes after 5 s), so an attempt rarely meets a
    connection the receiver has just closed (it is then sent again on a new one: at
    least once). Every take and give closes what has expired; at most PER_ORIGIN are
    kept per origin and MAX in all, the oldest closed first. A forked child starts
    with none. The address is still checked at every attempt (`Poster.post`). With
    RQ's forking worker nothing outlives a job."""

    IDLE_S = 4.0
    PER_ORIGIN = 8
    MAX = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (when given back, key, poster), oldest first
        self._idle: list[tuple[float, tuple[Any, ...], Poster]] = []

    def take(self, url: str, allowed: tuple[str, ...]) -> Poster:
        """An idle connection to the URL's origin if one is kept, else a new Poster."""
        key = (_origin(url), allowed)
        found: Poster | None = None
        with self._lock:
            closing = self._expire(time.monotonic())
            for i in range(len(self._idle) - 1, -1, -1):  # the most recent first
                if self._idle[i][1] == key:
                    found = self._idle.pop(i)[2]
                    break
        for poster in closing:
            poster.close()
        return found if found is not None else Poster(allowed)

    def give(self, poster: Poster) -> None:
        """Keep `poster`'s open connection for the next job."""
        origin = poster.origin
        if origin is None:
            return
        key = (origin, poster.allowed)
        with self._lock:
            now = time.monotonic()
            closing = self._expire(now)
            same = [i for i, entry in enumerate(self._idle) if entry[1] == key]
            if len(same) >= self.PER_ORIGIN:
                closing.append(self._idle.pop(same[0])[2])
            elif len(self._idle) >= self.MAX:
                closing.append(self._idle.pop(0)[2])
            self._idle.append((now, key, poster))
        for old in closing:
            old.close()

    def _expire(self, now: float) -> list[Poster]:
        """Drop (under the lock) what has been idle too long; the posters to close."""
        keep = 0
        while keep < len(self._idle) and now - self._idle[keep][0] > self.IDLE_S:
            keep += 1
        expired = [entry[2] for entry in self._idle[:keep]]
        del self._idle[:keep]
        return expired

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, _, poster in idle:
            poster.close()

    def forget_after_fork(self) -> None:
        """In a forked child: a fresh lock and none of the parent's sockets."""
        self._lock = threading.Lock()
        self._idle = []


IDLE = IdlePosters()
atexit.register(IDLE.clear)
os.register_at_fork(after_in_child=IDLE.forget_after_fork)
