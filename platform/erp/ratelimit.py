"""Rate limits per API key, per tenant and per operator token (API.md, Errors: 429).

Flask-Limiter on the job queue's Redis, checked right after authentication (its
before_request hook is installed after `erp.http`'s), so what has no principal
(/healthz, /readyz, the docs, a 401) is never counted. `RATE_LIMITS` sets the
limits (`erp.config.RateLimits`).

Cost: one Redis call per counted request. Flask-Limiter asks for one counter at
a time (an API-key request has two: its key's and its tenant's) and then reads
the window back for the headers; the storage below increments every counter of
the request in one script call and answers the rest from that reply.

Strategy: fixed window. A counter is one INCR with an expiry, O(1) memory; a
moving window keeps a list entry per request (thousands for a busy tenant) and
trims it on every hit, for an exactness these limits do not need: they stop
runaway clients, and a burst of up to twice a limit across a window boundary is
acceptable.

Redis down: the limiter fails open to per-process in-memory counters (the same
limits, counted per process) and probes Redis again with a backoff; a request
never fails because of the limiter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded, RequestLimit
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage

from erp.config import Settings
from erp.errors import Problem, problem_response
from erp.principals import Principal

log = logging.getLogger("erp.ratelimit")

_EXTENSION = "erp_limiter"
_WINDOWS = "erp.rate_windows"
#: A Redis that does not answer must not hold a request for long: after one
#: timeout the limiter switches to its in-memory fallback.
_REDIS_TIMEOUT_S = 0.5

#: Per key: INCRBY ARGV[1] and the remaining time to live. A counter found
#: without an expiry (none should be) gets ARGV[1 + i] seconds rather than
#: counting forever.
_INCR_ALL = b"""
local out = {}
for i, key in ipairs(KEYS) do
    local count = redis.call("INCRBY", key, ARGV[1])
    local ttl = redis.call("PTTL", key)
    if ttl < 0 then
        ttl = tonumber(ARGV[i + 1]) * 1000
        redis.call("PEXPIRE", key, ttl)
    end
    out[#out + 1] = count
    out[#out + 1] = ttl
end
return out
"""


def _principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


@dataclass(frozen=True)
class _Scope:
    """One `RATE_LIMITS` scope: whom it counts and by which identifier."""

    name: str
    rate: str
    label: str
    applies: Callable[[Principal], bool]
    identify: Callable[[Principal], str]

    @property
    def items(self) -> list[RateLimitItem]:
        return parse_many(self.rate)

    def key(self) -> str:
        principal = _principal()
        return self.identify(principal) if principal else ""

    def exempt(self) -> bool:
        principal = _principal()
        return principal is None or not self.applies(principal)


def _principal_id(p: Principal) -> str:
    return str(p.id)


def _tenant_id(p: Principal) -> str:
    return str(p.tenant_id)


def _scopes(settings: Settings) -> list[_Scope]:
    rates = settings.rate_limits
    scopes = []
    if rates.key:
        scopes.append(_Scope("key", rates.key, "this API key", _is_api_key, _principal_id))
    if rates.tenant:
        scopes.append(_Scope("tenant", rates.tenant, "this tenant", _has_tenant, _tenant_id))
    if rates.operator:
        scopes.append(
            _Scope("operator", rates.operator, "this operator", _is_operator, _principal_id)
        )
    return scopes


def _is_api_key(p: Principal) -> bool:
    return p.kind == "api_key"


def _has_tenant(p: Principal) -> bool:
    return p.tenant_id is not None


def _is_operator(p: Principal) -> bool:
    return p.kind == "operator"


def _request_windows() -> dict[str, list[Any]] | None:
    """This request's counters: storage key -> [count, expires at, unread by incr].
    Kept in the WSGI environ, not `g`, which requests inside one app context share."""
    if not has_request_context():
        return None
    windows: dict[str, list[Any]] = request.environ.setdefault(_WINDOWS, {})
    return windows


class _RequestBatchingRedisStorage(RedisStorage):
    """limits' Redis storage, one call per request: the first `incr` of a request
    increments every counter the request is subject to (`request_counters`) and
    keeps each count and expiry; the other counters' `incr`, and `get` and
    `get_expiry` for the headers, are answered from that reply. A key outside the
    batch (or a call outside a request) costs its own call, so a batch that misses
    a counter makes the limiter slower, never wrong."""

    STORAGE_SCHEME = ["erp+redis", "erp+rediss", "erp+unix"]

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix("erp+"), **options)
        #: Set by `init_app`: the (storage key, expiry) pairs of the current request.
        self.request_counters: Callable[[], list[tuple[str, int]]] = list

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self._incr_all = self.get_connection().register_script(_INCR_ALL)

    def _increment(self, counters: Sequence[tuple[str, int]], amount: int) -> list[list[Any]]:
        keys = [self.prefixed_key(key) for key, _ in counters]
        reply = self._incr_all(keys, [amount, *(expiry for _, expiry in counters)])
        now = time.time()
        return [
            [int(reply[2 * i]), now + int(reply[2 * i + 1]) / 1000, True]
            for i in range(len(counters))
        ]

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        windows = _request_windows()
        if windows is None:
            return int(self._increment([(key, expiry)], amount)[0][0])
        window = windows.get(key)
        # The batch counts 1 per counter, what every limit here costs.
        if window is None or not window[2] or amount != 1:
            batch = [(key, expiry)]
            if not windows and amount == 1:  # the request's first: count them all now
                batch += [c for c in self.request_counters() if c[0] != key]
            windows.update(zip((k for k, _ in batch), self._increment(batch, amount), strict=True))
            window = windows[key]
        window[2] = False
        return int(window[0])

    def get(self, key: str) -> int:
        windows = _request_windows()
        if windows and key in windows:
            return int(windows[key][0])
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        windows = _request_windows()
        if windows and key in windows:
            return float(windows[key][1])
        return super().get_expiry(key)


def storage_uri(redis_url: str) -> str:
    """REDIS_URL (`redis://`, `rediss://` or `unix://`) as this module's storage URI."""
    scheme, sep, rest = redis_url.partition("://")
    if not sep or scheme not in ("redis", "rediss", "unix"):
        raise ValueError("REDIS_URL: expected a redis://, rediss:// or unix:// URL")
    return f"erp+{scheme}://{rest}"


def _counters_of(scopes: list[_Scope], key_prefix: str) -> Callable[[], list[tuple[str, int]]]:
    """The storage keys Flask-Limiter will count for this request: it identifies a
    shared limit's window by [key prefix, key, scope] (tests/core/test_ratelimit.py
    checks that a request still makes one call)."""
    prefix = [key_prefix] if key_prefix else []
    parsed = [(scope, scope.items) for scope in scopes]

    def counters() -> list[tuple[str, int]]:
        return [
            (item.key_for(*prefix, scope.key(), scope.name), item.get_expiry())
            for scope, items in parsed
            if not scope.exempt()
            for item in items
        ]

    return counters


def _header_limit(limiter: Limiter) -> RequestLimit | None:
    """The limit the headers describe: the breached one, else the one nearest to it."""
    breached = [lim for lim in limiter.current_limits if lim.breached]
    if breached:
        return breached[0]
    return min(limiter.current_limits, key=lambda lim: lim.remaining, default=None)


def _add_headers(response: Response) -> Response:
    limiter: Limiter = current_app.extensions[_EXTENSION]
    try:
        limit = _header_limit(limiter)
        if limit is None:
            return response
        reset_in = max(0, math.ceil(limit.window.reset_time - time.time()))
        remaining = limit.remaining
    except Exception:  # the headers are advice; never fail a request over them
        log.warning("rate-limit headers unavailable", exc_info=True)
        return response
    response.headers["RateLimit-Limit"] = str(limit.limit.amount)
    response.headers["RateLimit-Remaining"] = str(remaining)
    response.headers["RateLimit-Reset"] = str(reset_in)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, reset_in))
    return response


def init_app(app: Flask, settings: Settings) -> None:
    """Install the limiter; call after `erp.http.install_request_hooks` (it needs the
    principal). Nothing is installed when every scope is off."""
    scopes = _scopes(settings)
    if not scopes:
        return
    labels = {scope.name: scope.label for scope in scopes}
    limiter = Limiter(
        lambda: "",  # every limit below brings its own key function
        application_limits=[
            ApplicationLimit(s.rate, key_function=s.key, scope=s.name, exempt_when=s.exempt)
            for s in scopes
        ],
        storage_uri=storage_uri(settings.redis_url),
        strategy="fixed-window",
        key_prefix=settings.queue_prefix,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        # Flask-Limiter's own headers are X-RateLimit-* with an epoch reset and a
        # Retry-After on every response; `_add_headers` writes the RateLimit-* fields.
        headers_enabled=False,
    )
    # No principal, nothing to count: skip the limiter's work entirely.
    limiter.request_filter(lambda: _principal() is None)
    # Passed to redis-py; through the config because Limiter's own parameter is
    # typed for str and int values only.
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        "socket_connect_timeout": _REDIS_TIMEOUT_S,
        "socket_timeout": _REDIS_TIMEOUT_S,
    }
    limiter.init_app(app)
    storage = limiter.storage
    if isinstance(storage, _RequestBatchingRedisStorage):
        storage.request_counters = _counters_of(scopes, settings.queue_prefix)

    def rate_limited(exc: RateLimitExceeded) -> Response:
        scope = exc.limit.scope if isinstance(exc.limit.scope, str) else ""
        who = labels.get(scope, "this credential")
        return problem_response(
            Problem("rate-limited", f"More than {exc.limit.limit} for {who}; retry later.")
        )

    app.extensions[_EXTENSION] = limiter
    app.after_request(_add_headers)
    app.register_error_handler(RateLimitExceeded, rate_limited)
