"""RFC 9457 problem+json for every error the API can return (API.md, Errors)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, json
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from erp.db import RETRYABLE_SQLSTATES, sqlstate

log = logging.getLogger("erp.errors")

PROBLEM_MIMETYPE = "application/problem+json"

#: slug -> (title, status). The one list of problem types; docs/problems.md mirrors it.
PROBLEM_TYPES: dict[str, tuple[str, int]] = {
    "malformed-request": ("Malformed request", 400),
    "unauthorized": ("Unauthorized", 401),
    "forbidden": ("Forbidden", 403),
    "tenant-suspended": ("Tenant suspended", 403),
    "not-found": ("Not found", 404),
    "method-not-allowed": ("Method not allowed", 405),
    "conflict": ("Conflict", 409),
    "idempotency-mismatch": ("Idempotency key reused with a different request", 409),
    "idempotency-in-flight": ("A request with this idempotency key is in progress", 409),
    "insufficient-stock": ("Insufficient stock", 409),
    "payload-too-large": ("Payload too large", 413),
    "unsupported-media-type": ("Unsupported media type", 415),
    "validation": ("Validation failed", 422),
    "unbalanced": ("Transaction does not balance", 422),
    "period-closed": ("Accounting period is closed", 422),
    "insufficient-funds": ("Insufficient funds", 422),
    "rate-limited": ("Too many requests", 429),
    "internal": ("Internal server error", 500),
    "unavailable": ("Service unavailable", 503),
}

_SLUG_BY_STATUS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    503: "unavailable",
}


class Problem(Exception):
    """An error the client should see, with a documented slug."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"undocumented problem slug {slug!r}")
        super().__init__(detail or slug)
        self.slug = slug
        self.title, self.status = PROBLEM_TYPES[slug]
        self.detail = detail or self.title
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def field_problem(slug: str, field: str, message: str, detail: str | None = None) -> Problem:
    """A 4xx naming the one field at fault."""
    return Problem(slug, detail or f"{field}: {message}", errors={field: [message]})


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow nested messages -> {"entries.0.amount": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema" and prefix:  # about the object at `prefix` as a whole
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten_errors(value, path))
    elif isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = [str(m) for m in messages]
    elif isinstance(messages, list | tuple):
        for i, value in enumerate(messages):
            out.update(flatten_errors(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def _strip_locations(messages: Any) -> Any:
    """webargs keys errors by location ({"json": {...}}); the API names fields only."""
    if isinstance(messages, Mapping) and set(messages) <= {"json", "query", "path", "headers"}:
        merged: dict[str, Any] = {}
        for value in messages.values():
            if isinstance(value, Mapping):
                merged.update(value)
        return merged
    return messages


def problem_response(problem: Problem) -> Response:
    base = current_app.config.get("PROBLEM_BASE_URI", "/problems/")
    body: dict[str, Any] = {
        "type": f"{base}{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "request_id": g.get("request_id"),
    }
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    resp = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_MIMETYPE)
    for name, value in problem.headers.items():
        resp.headers[name] = value
    return resp


def problem_from_http(exc: HTTPException) -> Problem:
    status = exc.code or 500
    slug = _SLUG_BY_STATUS.get(status, "internal" if status >= 500 else "malformed-request")
    data = getattr(exc, "data", None) or {}
    errors = None
    raw = data.get("errors") or data.get("messages")
    if raw:
        errors = flatten_errors(_strip_locations(raw))
    detail = data.get("message") or exc.description or None
    if status == 400 and "json" in str(raw).lower():
        detail = "The request body is not valid JSON."
    if status == 422 and errors:
        detail = "The request failed validation: " + ", ".join(sorted(errors))
    if status == 404:
        detail = "The resource does not exist."
    # Werkzeug's own headers (Allow on a 405, Retry-After...), but not its text/html type
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return Problem(slug, detail, errors=errors, headers=headers)


#: A domain's SQL names the fields at fault in the error's DETAIL, one `field: message`
#: per line (several lines: several messages, for one field or more).
_FIELD_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.+)$")


def _domain_problem(exc: DBAPIError, state: str) -> Problem | None:
    from erp.registry import registry

    known = registry().sqlstates.get(state)
    if known is None:
        return None
    diag = getattr(exc.orig, "diag", None)
    raised = getattr(diag, "message_detail", None) or ""
    lines = raised.splitlines()
    named = [m for line in lines if (m := _FIELD_LINE.match(line))]
    if named and len(named) == len(lines):
        errors: dict[str, list[str]] = {}
        for match in named:
            errors.setdefault(match[1], []).append(match[2])
        # The SQL that names fields writes its MESSAGE for the client: it is the detail.
        detail = getattr(diag, "message_primary", None) or raised
        return Problem(known.slug, detail, errors=errors)
    if known.field is not None:
        return Problem(known.slug, known.detail, errors={known.field: [known.detail]})
    return Problem(known.slug, known.detail)


def refusal(exc: DBAPIError) -> Problem | None:
    """The problem a domain registered for this error's SQLSTATE, else None: how a
    service turns its SQL function's refusal into the Problem its callers expect."""
    state = sqlstate(exc)
    return _domain_problem(exc, state) if state else None


#: The core's own SQLSTATE problems, for a state no domain maps more precisely: a
#: constraint PostgreSQL enforces, or a value it refused, is the client's problem,
#: never a 500; contention left after the retries is a 409 to retry.
#: state -> (slug, detail, Retry-After or None).
_FALLBACK_PROBLEMS: dict[str, tuple[str, str, str | None]] = {
    "22003": ("validation", "A value or a sum would overflow a 64-bit integer.", None),
    # serialization failure, deadlock: what is left after the request's retries (erp.http)
    **dict.fromkeys(
        RETRYABLE_SQLSTATES,
        ("conflict", "The request conflicted with concurrent changes; retry it.", "1"),
    ),
    "23505": ("conflict", "A value that must be unique is already taken.", None),
    "23P01": ("conflict", "The change conflicts with an existing row.", None),
    "23503": ("validation", "A referenced row does not exist.", None),
    "23514": ("validation", "A value breaks a rule of its field.", None),
    "23502": ("validation", "A required value is missing.", None),
    "22P02": ("validation", "A value is not valid for its type.", None),
    "22001": ("validation", "A value is longer than its field allows.", None),
    "22021": ("validation", "A value is not valid UTF-8.", None),
    "22P05": ("validation", "A value holds a character that cannot be stored.", None),
    "22007": ("validation", "A date or time is not valid.", None),
    "22008": ("validation", "A date or time is out of range.", None),
    "57014": ("unavailable", "The request took too long; retry it.", "5"),
    "55P03": ("conflict", "The row is locked by another request; retry it.", "1"),
}


def problem_from_db(exc: DBAPIError) -> Problem:
    domain = refusal(exc)
    if domain is not None:
        return domain
    state = sqlstate(exc)
    if state is not None and (state in _FALLBACK_PROBLEMS or state.startswith("23")):
        # Any other integrity constraint (class 23) is a value the client sent.
        slug, detail, retry = _FALLBACK_PROBLEMS.get(
            state, ("validation", "A value breaks a rule of its field.", None)
        )
        return Problem(slug, detail, headers={"Retry-After": retry} if retry else None)
    if state is None and isinstance(exc, DataError):
        # The driver refused a value before sending it (a NUL in text, say): the edge
        # (erp/inputs.py) should have caught it, and it is still the client's input.
        return Problem("validation", "A value cannot be stored.")
    # 57014 is statement_timeout (DB_STATEMENT_TIMEOUT_MS): busy, not wrong; 55P03
    # (lock_timeout, NOWAIT) is a 409 with Retry-After above, like other contention.
    if isinstance(exc, OperationalError) or (state or "").startswith(("08", "53", "57")):
        return Problem("unavailable", "The database is unavailable.", headers={"Retry-After": "5"})
    return Problem("internal", "An unexpected error occurred.")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return problem_response(problem_from_http(exc))

    @app.errorhandler(DBAPIError)
    def _db(exc: DBAPIError) -> Response:
        problem = problem_from_db(exc)
        if problem.status >= 500:
            log.error("database error", exc_info=exc)
        return problem_response(problem)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            log.error("queue unavailable", exc_info=exc)
            return problem_response(
                Problem("unavailable", "The queue is unavailable.", headers={"Retry-After": "5"})
            )
        log.exception("unhandled error")
        return problem_response(Problem("internal", "An unexpected error occurred."))
