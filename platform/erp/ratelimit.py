"""Rate limits per API key, per tenant and per operator token (API.md, Errors: 429).

Checked right after authentication (the before_request hook is installed after
`erp.http`'s), so what has no principal (/healthz, /readyz, the docs, a 401) is
never counted. `RATE_LIMITS` sets the limits (`erp.config.RateLimits`).

Engine: `limits`, the library Flask-Limiter is built on, parses the limits,
names the counters and counts in memory when Redis is away; the Redis side is
one Lua script of our own. Flask-Limiter itself is not used: profiled (issue 15,
cProfile on CPU time), its request pipeline (resolving, filtering and evaluating
limits per request, then reading each window back for the headers) cost about
0.8 ms of CPU per request, of which 0.25 ms was the Redis call: 40% of
`GET /api/v1/me`, 30% of a posting. Here everything per scope is computed once
(`_Limit`); a request costs formatting its counters' keys, one EVALSHA and a
comparison per limit.

Cost: at most one Redis call per counted request, and far fewer under load. The
script increments every counter of the request (an API-key request has two: its
key's and its tenant's) and returns each count and time to live, which decide
and fill the RateLimit-* headers. A busy counter is claimed in leases (`_Lease`):
a process that spends its units quickly claims several at once (INCRBY n) and
spends them locally until they run out or the window ends, so a key sending
thousands of requests a second costs a Redis call per few dozen of them.
Measured (issue 15): the Redis call was ~0.2 ms of a worker's CPU per request
under load, more than the rest of `GET /api/v1/me`. A lease is at most 1% of the
limit and at most a tenth of what the window has left, so leases never admit a
request past the limit (units are granted only up to it); at worst a client is
refused up to 1% of its limit per process early, while other processes hold
unspent units. Limits below 200 per window are never leased: each request is
counted in Redis, exactly as before.

Strategy: fixed window. A counter is one INCR with an expiry, O(1) memory; a
moving window keeps a list entry per request (thousands for a busy tenant) and
trims it on every hit, for an exactness these limits do not need: they stop
runaway clients, and a burst of up to twice a limit across a window boundary is
acceptable. A refused request is counted too (as with Flask-Limiter), so a
client hammering past its limit stays refused until the window ends.

Redis down: the limiter fails open to per-process in-memory counters (the same
limits, counted per process) and tries Redis again after 1, 2, 4, ... 32
seconds; a request never fails because of the limiter.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from erp.config import Settings
from erp.errors import Problem, problem_response
from erp.principals import Principal

log = logging.getLogger("erp.ratelimit")

_EXTENSION = "erp_limiter"
#: What the check decided, for the after_request hook: (RateLimit-Limit,
#: RateLimit-Remaining, RateLimit-Reset, Retry-After or None). In the WSGI
#: environ, not `g`, which requests inside one app context share.
_WINDOW = "erp.rate_window"
Window = tuple[str, str, str, str | None]
#: A Redis that does not answer must not hold a request for long: after one
#: timeout the limiter switches to its in-memory fallback.
_REDIS_TIMEOUT_S = 0.5
#: Seconds before Redis is tried again, doubling per failure up to 2**5.
_MAX_BACKOFF_EXPONENT = 5
#: limits' Redis storage prefixes its keys so; kept, so counters keep their names.
_REDIS_KEY_PREFIX = "LIMITS:"

#: Per key i: INCRBY ARGV[2i - 1] and the remaining time to live. A counter
#: found without an expiry (none should be) gets ARGV[2i] seconds rather than
#: counting forever.
_INCR_ALL = b"""
local out = {}
for i, key in ipairs(KEYS) do
    local count = redis.call("INCRBY", key, ARGV[2 * i - 1])
    local ttl = redis.call("PTTL", key)
    if ttl < 0 then
        ttl = tonumber(ARGV[2 * i]) * 1000
        redis.call("PEXPIRE", key, ttl)
    end
    out[#out + 1] = count
    out[#out + 1] = ttl
end
return out
"""


class _ScriptCall:
    """EVALSHA of one script on a connection per thread, past redis-py's client layer.

    Measured (issue 15), redis-py's command path (retry wrapper, pool checkout and
    return, argument encoding, response callbacks) cost three times the socket work
    of the call itself, ~0.1 ms of CPU per request. Here a thread keeps one of the
    pool's connections (which does the connecting, AUTH, SELECT and TLS) and the
    command is written as RESP directly. A failure drops that connection (the
    limiter then counts in memory and retries later); NOSCRIPT loads the script once.
    """

    def __init__(self, redis: Redis, script: bytes) -> None:
        self.pool = redis.connection_pool
        self.script = script
        self.sha = hashlib.sha1(script).hexdigest().encode()  # noqa: S324 (Redis's id)
        self.local = threading.local()

    def __call__(self, keys: list[str], args: list[int]) -> list[int]:
        parts = [b"EVALSHA", self.sha, b"%d" % len(keys)]
        parts += [k.encode() for k in keys]
        parts += [b"%d" % a for a in args]
        command = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.pool.make_connection()
        try:
            conn.send_packed_command([command], check_health=False)
            try:
                reply = conn.read_response()
            except NoScriptError:  # a new or flushed server: load it, once
                conn.send_command("SCRIPT", "LOAD", self.script, check_health=False)
                conn.read_response()
                conn.send_packed_command([command], check_health=False)
                reply = conn.read_response()
        except BaseException:
            conn.disconnect()
            self.local.conn = None
            raise
        return cast(list[int], reply)


@dataclass(frozen=True, slots=True)
class _Limit:
    """One limit of one scope, with everything a request needs precomputed."""

    scope: str
    item: RateLimitItem
    #: limits' identifiers before the principal's (the key prefix, if any).
    prefix: tuple[str, ...]
    #: The Redis key is head + identifier + tail: limits' `key_for(*prefix,
    #: identifier, scope)` behind its Redis storage's prefix.
    head: str
    tail: str
    amount: int
    expiry: int
    amount_header: str
    refusal: str

    @classmethod
    def of(cls, scope: str, label: str, item: RateLimitItem, key_prefix: str) -> _Limit:
        prefix = (key_prefix,) if key_prefix else ()
        marker = "\x00"
        head, _, tail = item.key_for(*prefix, marker, scope).partition(marker)
        return cls(
            scope=scope,
            item=item,
            prefix=prefix,
            head=_REDIS_KEY_PREFIX + head,
            tail=tail,
            amount=item.amount,
            expiry=item.get_expiry(),
            amount_header=str(item.amount),
            refusal=f"More than {item} for {label}; retry later.",
        )


@dataclass(frozen=True, slots=True)
class _Scope:
    """One `RATE_LIMITS` scope: its limits, and whom it counts by which identifier
    (None: it does not apply to this principal)."""

    limits: tuple[_Limit, ...]
    identify: Callable[[Principal], str | None]


def _key_id(p: Principal) -> str | None:
    return str(p.id) if p.kind == "api_key" else None


def _tenant_id(p: Principal) -> str | None:
    return str(p.tenant.id) if p.tenant is not None else None


def _operator_id(p: Principal) -> str | None:
    return str(p.id) if p.kind == "operator" else None


def _scopes(settings: Settings) -> list[_Scope]:
    rates = settings.rate_limits
    prefix = settings.queue_prefix
    scopes = []
    for name, rate, label, identify in (
        ("key", rates.key, "this API key", _key_id),
        ("tenant", rates.tenant, "this tenant", _tenant_id),
        ("operator", rates.operator, "this operator", _operator_id),
    ):
        if rate:
            limits = tuple(_Limit.of(name, label, item, prefix) for item in parse_many(rate))
            scopes.append(_Scope(limits, identify))
    return scopes


#: A lease is at most what its process spent in this many seconds.
LEASE_S = 0.05
#: Leases are pruned (ended windows) when a process holds more than this many.
_PRUNE_ABOVE = 10_000


@dataclass(slots=True)
class _Lease:
    """Units of one Redis counter this process claimed and has not spent yet."""

    left: int
    #: The counter's value in Redis after this process's last claim.
    total: int
    #: When the counter's window ends (monotonic), from its time to live.
    window_end: float
    #: The size of the last claim, and when it was made (monotonic).
    batch: int
    claimed_at: float
    #: The last claim granted nothing: this request (and the next) over the limit.
    refused: bool

    def remaining(self, limit: _Limit) -> int:
        """Units left in the window as this process knows it; < 0 when refused."""
        return -1 if self.refused else limit.amount - (self.total - self.left)

    def reset(self, now: float) -> int:
        return max(0, math.ceil(self.window_end - now))


#: One counted limit after the count: (limit, remaining, seconds to reset);
#: remaining < 0 when this request went over it.
_Count = tuple[_Limit, int, int]


class Limiter:
    """The scopes of one app, its Redis script and its fallback state."""

    def __init__(
        self, scopes: list[_Scope], redis_url: str, channel_limits: tuple[_Limit, ...] = ()
    ) -> None:
        self.scopes = scopes
        self.channel_limits = channel_limits
        try:
            # No retries: a retry is another timeout a request would wait for;
            # a failed call falls back to memory and Redis is tried again later.
            self.redis = Redis.from_url(
                redis_url,
                socket_connect_timeout=_REDIS_TIMEOUT_S,
                socket_timeout=_REDIS_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise ValueError(f"REDIS_URL: {exc}") from None
        self.incr_all = _ScriptCall(self.redis, _INCR_ALL)
        #: Consecutive failed Redis calls, and until when (monotonic) not to try.
        self.failures = 0
        self.redis_down_until = 0.0
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        #: Per Redis counter: this process's claimed, unspent units (`_Lease`).
        self.leases: dict[str, _Lease] = {}
        self.lock = threading.Lock()
        self.lease_s = LEASE_S

    def check(self) -> Response | None:
        """The before_request hook: count the principal's limits; a 429 over one."""
        principal: Principal | None = g.get("principal")
        if principal is None:
            return None
        counted: list[tuple[_Limit, str]] = []
        for scope in self.scopes:
            ident = scope.identify(principal)
            if ident is not None:
                counted.extend((limit, ident) for limit in scope.limits)
        return self._decide(counted)

    def check_channel(self, channel_id: str) -> Response | None:
        """Count one verified message to a sales channel (`channel` limits); a 429
        over one. The hook has no principal: its route calls this itself."""
        return self._decide([(limit, channel_id) for limit in self.channel_limits])

    def _decide(self, counted: list[tuple[_Limit, str]]) -> Response | None:
        if not counted:
            return None
        refused, window = self._verdict(counted)
        if window is not None:
            request.environ[_WINDOW] = window
        if refused is not None:
            return problem_response(Problem("rate-limited", refused.refusal))
        return None

    def _verdict(self, counted: list[tuple[_Limit, str]]) -> tuple[_Limit | None, Window | None]:
        """Count `counted`: the limit refusing the request (None: allowed) and the
        RateLimit-* values to show."""
        if self.failures and time.monotonic() < self.redis_down_until:
            counts = self._count_in_memory(counted)
        else:
            counts = self._count_in_redis(counted)
        refused: _Count | None = None
        shown: _Count | None = None
        for count in counts:
            if count[1] < 0:
                # Retry-After must outlast every window the request went over.
                if refused is None or count[2] > refused[2]:
                    refused = count
            elif shown is None or count[1] < shown[1]:
                shown = count  # the limit nearest to being reached
        if refused is not None:
            limit, _, reset = refused
            return limit, (limit.amount_header, "0", str(reset), str(max(1, reset)))
        if shown is not None:
            limit, remaining, reset = shown
            return None, (limit.amount_header, str(remaining), str(reset), None)
        return None, None

    def _count_in_redis(self, counted: list[tuple[_Limit, str]]) -> list[_Count]:
        """Spend a unit of each counter's lease; claim from Redis, in one call, for
        the counters whose lease is empty or from an ended window."""
        now = time.monotonic()
        keys = [limit.head + ident + limit.tail for limit, ident in counted]
        counts: list[_Count | None] = [None] * len(counted)
        claims: list[int] = []  # indexes into counted
        with self.lock:
            for i, (limit, _) in enumerate(counted):
                lease = self.leases.get(keys[i])
                if lease is not None and lease.left > 0 and lease.window_end > now:
                    lease.left -= 1
                    counts[i] = (limit, lease.remaining(limit), lease.reset(now))
                else:
                    claims.append(i)
            batches = [self._batch(keys[i], counted[i][0], now) for i in claims]
        if claims:
            args: list[int] = []
            for i, batch in zip(claims, batches, strict=True):
                args += [batch, counted[i][0].expiry]
            try:
                reply = self.incr_all([keys[i] for i in claims], args)
            except Exception as exc:  # any failure of the storage: fail open, never a 500
                self._redis_failed(exc)
                return self._count_in_memory(counted)
            if self.failures:
                log.info("rate-limit storage recovered; counting in Redis again")
                self.failures = 0
            with self.lock:
                self._prune(now)
                for n, (i, batch) in enumerate(zip(claims, batches, strict=True)):
                    limit = counted[i][0]
                    total, ttl_ms = int(reply[2 * n]), int(reply[2 * n + 1])
                    lease = self._claimed(keys[i], limit, batch, total, ttl_ms, now)
                    counts[i] = (limit, lease.remaining(limit), lease.reset(now))
        return [c for c in counts if c is not None]

    def _batch(self, key: str, limit: _Limit, now: float) -> int:
        """How many units to claim: 1, or as many as this process spent in the last
        LEASE_S at its recent pace, within the lease's caps."""
        lease = self.leases.get(key)
        if lease is None:
            return 1
        fast = now - lease.claimed_at < self.lease_s
        pace = lease.batch * 2 if fast else max(1, lease.batch // 2)
        left_in_window = limit.amount - lease.total if lease.window_end > now else limit.amount
        return max(1, min(pace, limit.amount // 100, left_in_window // 10))

    def _claimed(
        self, key: str, limit: _Limit, batch: int, total: int, ttl_ms: int, now: float
    ) -> _Lease:
        """Record a claim of `batch` units that brought the counter to `total`; this
        request takes one of the granted units, or is refused if none was granted."""
        granted = max(0, min(batch, limit.amount - (total - batch)))
        window_end = now + max(ttl_ms, 0) / 1000
        lease = self.leases.get(key)
        if lease is None or lease.window_end <= now:
            lease = self.leases[key] = _Lease(0, total, window_end, batch, now, False)
        lease.total = max(lease.total, total)
        lease.window_end = window_end
        lease.batch = batch
        lease.claimed_at = now
        lease.refused = granted == 0
        if granted:
            lease.left += granted - 1  # one is this request's
        else:
            lease.left = 0
        return lease

    def _prune(self, now: float) -> None:
        """Forget leases of windows that ended (keys and tenants that went quiet)."""
        if len(self.leases) > _PRUNE_ABOVE:
            for key in [k for k, v in self.leases.items() if v.window_end <= now]:
                del self.leases[key]

    def _redis_failed(self, exc: Exception) -> None:
        if not self.failures:
            log.warning(
                "rate-limit storage unreachable (%s); counting in memory", type(exc).__name__
            )
        backoff = 2 ** min(self.failures, _MAX_BACKOFF_EXPONENT)
        self.failures += 1
        self.redis_down_until = time.monotonic() + backoff

    def _count_in_memory(self, counted: list[tuple[_Limit, str]]) -> list[_Count]:
        """The same limits on this process's own counters (limits' memory storage)."""
        counts = []
        now = time.time()
        for limit, ident in counted:
            identifiers = (*limit.prefix, ident, limit.scope)
            within = self.memory.hit(limit.item, *identifiers)
            reset_at, remaining = self.memory.get_window_stats(limit.item, *identifiers)
            reset = max(0, math.ceil(reset_at - now))
            counts.append((limit, remaining if within else -1, reset))
        return counts


def add_headers(response: Response) -> Response:
    """The after_request hook: RateLimit-* (and Retry-After on a refusal) from what
    `Limiter.check` decided for this request."""
    window = request.environ.get(_WINDOW)
    if window is not None:
        for name, value in window_headers(window):
            response.headers[name] = value
    return response


def window_headers(window: Window) -> list[tuple[str, str]]:
    headers = [
        ("RateLimit-Limit", window[0]),
        ("RateLimit-Remaining", window[1]),
        ("RateLimit-Reset", window[2]),
    ]
    if window[3] is not None:
        headers.append(("Retry-After", window[3]))
    return headers


def _channel_limits(settings: Settings) -> tuple[_Limit, ...]:
    rate = settings.rate_limits.channel
    if not rate:
        return ()
    prefix = settings.queue_prefix
    return tuple(_Limit.of("channel", "this channel", i, prefix) for i in parse_many(rate))


def init_app(app: Flask, settings: Settings) -> None:
    """Install the limiter; call after `erp.http.install_request_hooks` (it needs the
    principal). Nothing is installed when every scope is off."""
    scopes = _scopes(settings)
    channel_limits = _channel_limits(settings)
    if not scopes and not channel_limits:
        return
    limiter = Limiter(scopes, settings.redis_url, channel_limits)
    app.extensions[_EXTENSION] = limiter
    if scopes:
        app.before_request(limiter.check)
    app.after_request(add_headers)


def check_channel(channel_id: str) -> Response | None:
    """The `channel` limit for one verified inbound message (a 429), or None."""
    limiter: Limiter | None = current_app.extensions.get(_EXTENSION)
    return None if limiter is None else limiter.check_channel(channel_id)


def count_channel(channel_id: str) -> tuple[bool, list[tuple[str, str]]]:
    """The same count for a fast path (erp/fastpath.py; app context, no request):
    whether the message is over the limit, and the RateLimit-* headers to send. A
    refused message goes on through Flask, which counts it again and answers 429:
    over the limit, a refused message spends two units of a window already spent."""
    limiter: Limiter | None = current_app.extensions.get(_EXTENSION)
    if limiter is None or not limiter.channel_limits:
        return False, []
    refused, window = limiter._verdict([(lim, channel_id) for lim in limiter.channel_limits])
    return refused is not None, window_headers(window) if window is not None else []
