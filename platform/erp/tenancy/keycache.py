"""API keys verified once, then served from memory until something changes.

Every API request used to look its key up in PostgreSQL (a round trip, ~10% of a
request's CPU). Now each process keeps the rows it looked up, tagged with the
*auth epoch*: a counter in Redis that every change to a key or a tenant's status
increments after its commit (`bump_after_commit`). A process reads the epoch at
most every `EPOCH_EVERY_S` (one Redis GET, not one per request); an entry tagged
with an older epoch is looked up again. So a revoked key, a suspended or deleted
tenant stops working on every replica within `EPOCH_EVERY_S` of the commit, and at
once on the replica that made the change.

The cache is off (every request looks its key up) while Redis cannot be read; an
entry is never older than `Settings.auth_cache_seconds` whatever the epoch says,
which bounds what a change made outside the API (SQL by hand) or during a Redis
outage can outlive. `auth_cache_seconds = 0` turns the cache off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from erp.db import db
from erp.jobs import call_after_commit

log = logging.getLogger("erp.tenancy.keycache")

EPOCH_EVERY_S = 0.1
MAX_ENTRIES = 10_000
_TIMEOUT_S = 0.5
_KEY = "erp_key_cache"
_clients: dict[str, Redis] = {}
_clients_lock = threading.Lock()


def _redis(url: str) -> Redis:
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.setdefault(
                url,
                Redis.from_url(url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S),
            )
    return client


def _epoch_key() -> str:
    return f"{db.settings.queue_prefix}:auth-epoch"


@dataclass
class _Entry:
    row: Any
    epoch: int
    fetched_at: float
    touched_at: float
    #: The Principal built from `row` (immutable), once per entry, not per request.
    principal: Any = None


class KeyCache:
    """One app's (one process's) verified keys."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self.entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.lock = threading.Lock()
        self.epoch: int | None = None
        self.epoch_read_at = float("-inf")
        #: After a failed read, the next try waits (1 s, 2 s ... 30 s): an unreachable
        #: Redis costs one timeout now and then, not one per request.
        self.failures = 0

    def current_epoch(self) -> int | None:
        """The auth epoch, read from Redis at most every EPOCH_EVERY_S; None (no
        caching) while Redis cannot be read."""
        now = time.monotonic()
        wait = EPOCH_EVERY_S if not self.failures else min(2 ** (self.failures - 1), 30)
        if now - self.epoch_read_at < wait:
            return self.epoch
        try:
            raw = _redis(db.settings.redis_url).get(_epoch_key())
            epoch: int | None = int(raw or 0)
            self.failures = 0
        except (RedisError, ValueError) as exc:
            if not self.failures:
                log.warning("auth epoch unreadable (%s); API keys looked up each time", exc)
            self.failures += 1
            epoch = None
            self.clear()
        self.epoch, self.epoch_read_at = epoch, time.monotonic()
        return epoch

    def get(self, ident: tuple[str, str], epoch: int) -> _Entry | None:
        entry = self.entries.get(ident)
        if entry is None:
            return None
        if entry.epoch != epoch or time.monotonic() - entry.fetched_at > self.max_age_s:
            with self.lock:
                self.entries.pop(ident, None)
            return None
        return entry

    def put(self, ident: tuple[str, str], row: Any, epoch: int, touched: bool) -> _Entry:
        now = time.monotonic()
        entry = _Entry(row, epoch, now, now if touched else float("-inf"))
        with self.lock:
            self.entries[ident] = entry
            while len(self.entries) > MAX_ENTRIES:
                self.entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


def key_cache() -> KeyCache | None:
    """The current app's cache; None outside an app or when it is turned off."""
    if not has_app_context():
        return None
    cache: KeyCache | None = current_app.extensions.get(_KEY)
    if cache is None:
        max_age = current_app.config["ERP_SETTINGS"].auth_cache_seconds
        if max_age <= 0:
            return None
        cache = current_app.extensions.setdefault(_KEY, KeyCache(max_age))
    return cache


def bump_now() -> None:
    """Forget every cached key here and make every other process look its keys up again."""
    cache = key_cache()
    if cache is not None:
        cache.clear()
        if not cache.failures:
            cache.epoch_read_at = float("-inf")
    try:
        _redis(db.settings.redis_url).incr(_epoch_key())
    except RedisError as exc:
        # Other replicas keep their entries until auth_cache_seconds (docs/operations.md).
        log.warning("could not bump the auth epoch (%s)", exc)


def bump_after_commit(s: Session) -> None:
    """A key or a tenant's status changes in this transaction: bump once it commits."""
    call_after_commit(s, bump_now)
