"""Fast paths: the usual case of a high-volume request, answered before Flask.

A domain registers one with `Registry.fast_path(pattern, handler, method=...)` for a
route it also serves the ordinary way (a blueprint). The app's WSGI callable is
wrapped (`install`): a request whose method and path match is read here and its
handler called with a `FastRequest`, inside the app context. The handler either
answers (`FastAnswer`: a status and a JSON body) or returns None, and the request
then goes through Flask unchanged (its body put back), where the full route
answers every case: refusals, problems, retries. So a fast path only ever
implements the one case it is for, and every other answer keeps a single
definition. A handler that raises is taken as None: it must raise only before it
changes anything (its one transaction rolled back).

What it keeps of the ordinary request lifecycle (erp/http.py): the request id
(X-Request-Id, taken from the caller when well formed, `current_request_id` for the
logs), the access log line, and the same body limit. A request with an
Authorization header, a query string, no Content-Length or one over
MAX_CONTENT_LENGTH is never taken: Flask's checks answer those.

Why: a request through Flask's machinery (request context, before and after hooks,
the response object) cost about a third of the CPU of the shops' webhook intake,
whose target is a share of what PostgreSQL sustains for the same insert (issue 18;
bench/scenarios/orders_inbound.py).
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from erp import jsontext
from erp.context import current_request_id
from erp.http import log_access, request_id_of

log = logging.getLogger("erp.fastpath")


@dataclass(frozen=True)
class FastRequest:
    """What a handler gets: the pattern's named groups, the raw body, the headers."""

    params: dict[str, str]
    body: bytes
    headers: EnvironHeaders
    request_id: str


@dataclass(frozen=True)
class FastAnswer:
    """A handler's reply: a 2xx status, a JSON body, extra headers."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[FastRequest], FastAnswer | None]


@dataclass(frozen=True)
class FastPath:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def compile_path(pattern: str, handler: Handler, method: str = "POST") -> FastPath:
    """`pattern`: a regular expression over the whole path, its parameters as named
    groups (`/hooks/v1/channels/(?P<channel_id>[^/]+)/orders`)."""
    return FastPath(method.upper(), re.compile(pattern), handler)


def install(app: Flask, paths: Iterable[FastPath]) -> None:
    """Wrap `app.wsgi_app` so that `paths` are tried first (no-op without any)."""
    table = list(paths)
    if table:
        app.wsgi_app = _Middleware(app, app.wsgi_app, table)  # type: ignore[assignment]


class _Middleware:
    def __init__(self, app: Flask, inner: Any, paths: list[FastPath]) -> None:
        self.app = app
        self.inner = inner
        self.paths = paths
        limit = app.config.get("MAX_CONTENT_LENGTH")
        self.limit: int | None = int(limit) if limit is not None else None

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        found = self._match(env)
        if found is None:
            return self.inner(env, start_response)
        path, params = found
        started = time.perf_counter()
        length = _length(env.get("CONTENT_LENGTH"))
        if length is None or (self.limit is not None and length > self.limit):
            return self.inner(env, start_response)
        try:
            body = env["wsgi.input"].read(length) if length else b""
        except Exception:  # the client went away: Flask answers it as it would
            env["wsgi.input"] = io.BytesIO(b"")
            return self.inner(env, start_response)
        request_id = request_id_of(env.get("HTTP_X_REQUEST_ID", ""))
        request = FastRequest(params, body, EnvironHeaders(env), request_id)
        answer = self._answer(path, request)
        if answer is None:
            env["wsgi.input"] = io.BytesIO(body)  # Flask reads it again
            env["HTTP_X_REQUEST_ID"] = request_id  # and logs under the same id
            return self.inner(env, start_response)
        payload = jsontext.dumps_bytes(answer.body)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            *answer.headers,
            ("X-Request-Id", request_id),
        ]
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
        log_access(env["REQUEST_METHOD"], env.get("PATH_INFO", ""), answer.status, started)
        return [payload]

    def _match(self, env: dict[str, Any]) -> tuple[FastPath, dict[str, str]] | None:
        if env.get("QUERY_STRING") or "HTTP_AUTHORIZATION" in env:
            return None
        if "HTTP_TRANSFER_ENCODING" in env:
            return None
        method = env.get("REQUEST_METHOD", "")
        route = env.get("PATH_INFO", "")
        for path in self.paths:
            if path.method == method:
                m = path.pattern.fullmatch(route)
                if m is not None:
                    return path, m.groupdict()
        return None

    def _answer(self, path: FastPath, request: FastRequest) -> FastAnswer | None:
        token = current_request_id.set(request.request_id)
        try:
            with self.app.app_context():
                return path.handler(request)
        except Exception:
            log.warning("a fast path raised; the request goes through Flask", exc_info=True)
            return None
        finally:
            current_request_id.reset(token)


def _length(raw: Any) -> int | None:
    """Content-Length as a number of bytes, or None when absent or not one."""
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    return int(raw)
