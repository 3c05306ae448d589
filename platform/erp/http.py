"""The request lifecycle: request id, media type, authentication, one transaction.

`ErpFlask.dispatch_request` runs the view and commits the request's session
*before* the response leaves, so a failure at commit (a deferred constraint, a
serialization failure) becomes the error response, never a 2xx. Serialization
failures and deadlocks re-run the whole view a few times first.
"""

from __future__ import annotations

import inspect
import logging
import re
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
from flask import Flask, Request, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError

from erp import jsontext, logs
from erp.context import current_actor, current_request_id
from erp.db import backoff, current_db_role, current_tenant, is_retryable, one_flight_scope
from erp.errors import Problem
from erp.inputs import is_raw_intake
from erp.registry import registry

log = logging.getLogger("erp.http")
P = ParamSpec("P")
T = TypeVar("T")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ATTEMPTS = 5


def finish_session(commit: bool) -> None:
    session = g.pop("_erp_session", None)
    if session is None:
        return
    try:
        if commit and not session.in_transaction() and not session.info and not session.new:
            pass  # nothing began (a one-flight call committed on its own): nothing to send
        elif commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


class _NoCookieSessions(SessionInterface):
    """Flask's signed-cookie session is unused here (console sessions live in
    PostgreSQL, DESIGN.md §4); without this, every request built a signer for it."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return None  # Flask then uses its null session, which refuses writes

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


class _JsonProvider(DefaultJSONProvider):
    """Flask's JSON responses through orjson: the same JSON value for what Flask's own
    provider serialises (keys sorted; dates, times, dataclasses, Decimals and the rest
    handed to Flask's `default`), a fifth of the CPU. Anything orjson refuses (an
    integer past 64 bits, a non-string key) goes through Flask's provider as before.
    Non-ASCII characters are sent as UTF-8 rather than \\u escapes: the same JSON."""

    _OPTIONS = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_APPEND_NEWLINE
    )

    def response(self, *args: Any, **kwargs: Any) -> Any:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=self._OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            return super().response(obj)
        response_class: Any = self._app.response_class
        return response_class(body, mimetype=self.mimetype)


class ErpFlask(Flask):
    session_interface = _NoCookieSessions()
    json_provider_class = _JsonProvider

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """No view here is a coroutine (checked at startup by `check_no_async_views`):
        skip Flask's per-call inspection, which flask-smorest's decorators repeat
        at every layer (~2% of a posting's CPU)."""
        return func

    def dispatch_request(self) -> ResponseReturnValue:
        for attempt in range(ATTEMPTS):
            try:
                response = self.make_response(super().dispatch_request())
                finish_session(commit=response.status_code < 400)
                return response
            except DBAPIError as exc:
                finish_session(commit=False)
                if not is_retryable(exc) or attempt == ATTEMPTS - 1:
                    raise
                log.info("retrying after %s", type(exc.orig).__name__, extra={"attempt": attempt})
            except BaseException:
                finish_session(commit=False)
                raise
            backoff(attempt)
        raise AssertionError("unreachable")


def check_no_async_views(app: Flask) -> None:
    """Refuse a coroutine view at startup (ErpFlask.ensure_sync does not run them)."""
    for endpoint, view in app.view_functions.items():
        cls = getattr(view, "view_class", None)
        targets = [getattr(cls, m.lower()) for m in getattr(cls, "methods", ())] if cls else []
        for target in [view, *targets]:
            if inspect.iscoroutinefunction(inspect.unwrap(target)):
                raise TypeError(f"view {endpoint!r} is a coroutine: views here are synchronous")


def one_flight(view: Callable[P, T]) -> Callable[P, T]:
    """Mark a view whose database work is one `erp.db.call_one`, as its last step: when
    nothing ran before it in the request's transaction (no Idempotency-Key lookup, say),
    that call is sent with BEGIN, the tenant pin and COMMIT as one message, one round
    trip (`erp.db.one_flight_scope`; docs/domains.md, "How to add a fast command")."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with one_flight_scope():  # afresh on a retry of the view
            return view(*args, **kwargs)

    return wrapper


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON reply built by the view itself (a flask-smorest `@blp.response` passes a
    Response through untouched; its schema still documents the shape)."""
    return current_app.response_class(
        jsontext.dumps_bytes(body), status=status, mimetype="application/json"
    )


def request_id_of(incoming: str) -> str:
    """The request's id: the caller's X-Request-Id when well formed, else a new one."""
    return incoming if _REQUEST_ID_RE.match(incoming) else secrets.token_hex(16)


def log_access(method: str, path: str, status: int, started: float) -> None:
    """The request's access log line (health checks are not logged)."""
    if path.startswith(("/healthz", "/readyz")):
        return
    logs.access(
        log,
        {
            "method": method,
            "path": path,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


def _start() -> None:
    g.request_id = request_id_of(request.headers.get("X-Request-Id", ""))
    g.started = time.perf_counter()
    g.ctx_tokens = [current_request_id.set(g.request_id)]


def _check_body() -> None:
    """Refuse an oversized body before anything runs, whether or not the view reads it."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise Problem("payload-too-large", f"The body exceeds {limit} bytes.")
    if request.method not in _BODY_METHODS:
        return
    has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
    if (
        has_body
        and request.mimetype != "application/json"
        and not is_raw_intake()
        and not (request.mimetype == "application/x-www-form-urlencoded" and _is_page())
    ):
        raise Problem("unsupported-media-type", "Send the body as application/json.")


def _is_page() -> bool:
    """Whether the request is for a server-rendered page (`Registry.pages`): its forms
    post `application/x-www-form-urlencoded`."""
    names = {b.name for b in registry().page_blueprints}
    return request.blueprint is not None and request.blueprint in names


def _authenticate() -> None:
    principal = None
    for authenticate in registry().authenticators:
        principal = authenticate(request.path, request.headers.get("Authorization"))
        if principal is not None:
            break
    g.principal = principal
    if principal is None:
        return
    g.ctx_tokens += [
        current_actor.set(principal.actor),
        current_tenant.set(principal.tenant_id),
        current_db_role.set("erp_ops" if principal.kind == "operator" else None),
    ]


def _finish(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    started = g.get("started")
    if started is not None:
        log_access(request.method, request.path, response.status_code, started)
    return response


def _teardown(_exc: BaseException | None) -> None:
    finish_session(commit=False)
    tokens: list[Any] = g.pop("ctx_tokens", [])
    for token in reversed(tokens):
        token.var.reset(token)


def install_request_hooks(app: Flask) -> None:
    app.before_request(_start)
    app.before_request(_check_body)
    app.before_request(_authenticate)
    app.after_request(_finish)
    app.teardown_request(_teardown)
