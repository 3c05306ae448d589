"""Rate limits per API key, tenant and operator (RATE_LIMITS), on Redis; 429 problems with
RateLimit-* and Retry-After; failing open to memory when Redis goes away."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from erp.config import RateLimits, Settings
from erp.http import ErpFlask
from erp.ratelimit import Limiter
from erp.tenancy.keycache import EPOCH_EVERY_S
from tests.conftest import TenantHandle
from tests.core.conftest import AppFactory
from tests.core.own_redis import OwnRedis

ME = "/api/v1/me"
SCRIPT_CALL = ("cmdstat_evalsha", "cmdstat_incrby", "cmdstat_pttl")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis this test may stop (never the shared one)."""
    server = OwnRedis(tmp_path)
    yield server
    server.stop()


def limited(make_app: AppFactory, redis_url: str | None = None, **rates: str | None) -> ErpFlask:
    """An app whose limits are `rates` (scopes not named are off); its own counter
    namespace, so no other test's requests count against it."""
    changes: dict[str, Any] = {
        "rate_limits": RateLimits(
            **{"key": None, "tenant": None, "operator": None, "channel": None, **rates}
        ),
        "queue_prefix": f"erp-test-rl-{uuid.uuid4().hex[:8]}",
    }
    if redis_url is not None:
        changes["redis_url"] = redis_url
    return make_app(**changes)


def second_key(client: Any, ops_headers: dict[str, str], tenant: TenantHandle) -> dict[str, str]:
    r = client.post(
        f"/ops/v1/tenants/{tenant.id}/api-keys",
        json={"name": "second key", "scopes": ["ledger:read"]},
        headers=ops_headers,
    )
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['key']}"}


def assert_rate_limited(r: Any, limit: int, who: str) -> None:
    assert r.status_code == 429
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"].endswith("/rate-limited")
    assert body["status"] == 429
    assert who in body["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["RateLimit-Limit"] == str(limit)
    assert r.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(r.headers["RateLimit-Reset"]) <= 60


def test_the_fourth_request_of_a_key_is_429_with_headers(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    client = limited(make_app, key="3/minute").test_client()
    for remaining in (2, 1, 0):
        r = client.get(ME, headers=tenant.headers)
        assert r.status_code == 200
        assert r.headers["RateLimit-Limit"] == "3"
        assert r.headers["RateLimit-Remaining"] == str(remaining)
        assert 1 <= int(r.headers["RateLimit-Reset"]) <= 60
        assert "Retry-After" not in r.headers
    assert_rate_limited(client.get(ME, headers=tenant.headers), 3, "this API key")
    # Writes count too, and a refused request is refused before it does anything.
    r = client.post("/api/v1/api-keys", json={"name": "x"}, headers=tenant.headers)
    assert_rate_limited(r, 3, "this API key")


def test_keys_of_one_tenant_share_its_limit_and_other_tenants_are_unaffected(
    make_app: AppFactory,
    client: Any,
    ops_headers: dict[str, str],
    tenant: TenantHandle,
    other_tenant: TenantHandle,
) -> None:
    other_key = second_key(client, ops_headers, tenant)
    limited_client = limited(make_app, key="100/minute", tenant="3/minute").test_client()
    assert limited_client.get(ME, headers=tenant.headers).status_code == 200
    assert limited_client.get(ME, headers=tenant.headers).status_code == 200
    r = limited_client.get(ME, headers=other_key)
    assert r.status_code == 200
    assert r.headers["RateLimit-Remaining"] == "0"  # the tenant's, the nearest limit
    assert_rate_limited(limited_client.get(ME, headers=other_key), 3, "this tenant")
    assert_rate_limited(limited_client.get(ME, headers=tenant.headers), 3, "this tenant")
    r = limited_client.get(ME, headers=other_tenant.headers)
    assert r.status_code == 200
    assert r.headers["RateLimit-Remaining"] == "2"


def test_a_key_limit_leaves_the_tenants_other_keys_alone(
    make_app: AppFactory, client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    other_key = second_key(client, ops_headers, tenant)
    limited_client = limited(make_app, key="2/minute", tenant="100/minute").test_client()
    for _ in range(2):
        assert limited_client.get(ME, headers=tenant.headers).status_code == 200
    assert_rate_limited(limited_client.get(ME, headers=tenant.headers), 2, "this API key")
    assert limited_client.get(ME, headers=other_key).status_code == 200


def test_operator_tokens_have_their_own_limit(
    make_app: AppFactory, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    client = limited(make_app, key="100/minute", operator="2/minute").test_client()
    for _ in range(2):
        assert client.get("/ops/v1/tenants", headers=ops_headers).status_code == 200
    assert_rate_limited(client.get("/ops/v1/tenants", headers=ops_headers), 2, "this operator")
    assert client.get(ME, headers=tenant.headers).status_code == 200


def test_unauthenticated_paths_are_not_limited(make_app: AppFactory) -> None:
    client = limited(make_app, key="1/minute", tenant="1/minute", operator="1/minute").test_client()
    for _ in range(3):
        for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/api/docs"):
            r = client.get(path)
            assert r.status_code == 200, path
            assert "RateLimit-Limit" not in r.headers
        r = client.get(ME, headers={"Authorization": "Bearer erp_test_nope"})
        assert r.status_code == 401
        assert "RateLimit-Limit" not in r.headers


def test_processes_share_the_counters_in_redis(make_app: AppFactory, tenant: TenantHandle) -> None:
    """Two apps stand for two gunicorn workers: one window, counted in Redis."""
    first = limited(make_app, key="3/minute")
    second = make_app(
        rate_limits=first.config["ERP_SETTINGS"].rate_limits,
        queue_prefix=first.config["ERP_SETTINGS"].queue_prefix,
    )
    assert first.test_client().get(ME, headers=tenant.headers).status_code == 200
    assert second.test_client().get(ME, headers=tenant.headers).status_code == 200
    assert first.test_client().get(ME, headers=tenant.headers).status_code == 200
    assert_rate_limited(second.test_client().get(ME, headers=tenant.headers), 3, "API key")


def test_all_scopes_off_installs_no_limiter(make_app: AppFactory, tenant: TenantHandle) -> None:
    app = limited(make_app)
    assert "erp_limiter" not in app.extensions
    r = app.test_client().get(ME, headers=tenant.headers)
    assert r.status_code == 200
    assert "RateLimit-Limit" not in r.headers


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_redis_stopped_fails_open_and_readyz_says_degraded(
    make_app: AppFactory, own_redis: OwnRedis, tenant: TenantHandle, transport: str
) -> None:
    url = own_redis.start(unix=transport == "unix")
    client = limited(make_app, url, key="4/minute").test_client()
    for remaining in (3, 2):
        r = client.get(ME, headers=tenant.headers)
        assert r.status_code == 200
        assert r.headers["RateLimit-Remaining"] == str(remaining)
    with Redis.from_url(url) as direct:  # the counter really is in this Redis
        assert [k for k in direct.scan_iter("LIMITS:*") if str(tenant.key_id).encode() in k]

    own_redis.stop()
    # Fail open: the same limits, counted in this process's memory from zero.
    for remaining in (3, 2, 1, 0):
        r = client.get(ME, headers=tenant.headers)
        assert r.status_code == 200
        assert r.headers["RateLimit-Remaining"] == str(remaining)
    assert_rate_limited(client.get(ME, headers=tenant.headers), 4, "this API key")
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("error")


def test_back_to_redis_after_the_backoff_with_the_same_counter_names(
    make_app: AppFactory, own_redis: OwnRedis, tenant: TenantHandle
) -> None:
    url = own_redis.start(unix=True)
    app = limited(make_app, url, key="5/minute")
    limiter: Limiter = app.extensions["erp_limiter"]
    client = app.test_client()
    # The name Flask-Limiter gave this counter (limits' key_for under its Redis
    # storage's prefix): a deploy neither resets nor doubles the windows.
    prefix = app.config["ERP_SETTINGS"].queue_prefix
    counter = f"LIMITS:LIMITER/{prefix}/{tenant.key_id}/key/5/1/minute"
    assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "4"

    own_redis.stop()
    assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "4"
    assert limiter.failures == 1
    assert 0 < limiter.redis_down_until - time.monotonic() <= 1
    own_redis.start(unix=True)  # back, empty, on the same socket
    # Within the backoff the process keeps counting in memory, without trying Redis.
    assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "3"
    with Redis.from_url(url) as direct:
        assert direct.get(counter) is None
        time.sleep(max(0.0, limiter.redis_down_until - time.monotonic()) + 0.05)
        assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "4"
        assert direct.get(counter) == b"1"
        assert limiter.failures == 0


def test_the_backoff_doubles_up_to_32_seconds(make_app: AppFactory, tenant: TenantHandle) -> None:
    app = limited(make_app, "redis://127.0.0.1:1/0", key="100/minute")
    limiter: Limiter = app.extensions["erp_limiter"]
    client = app.test_client()
    waits = []
    for _ in range(8):
        limiter.redis_down_until = 0.0  # as if the last backoff were over
        assert client.get(ME, headers=tenant.headers).status_code == 200
        waits.append(limiter.redis_down_until - time.monotonic())
    assert [round(w) for w in waits] == [1, 2, 4, 8, 16, 32, 32, 32]


def test_a_redis_that_does_not_answer_costs_one_timeout(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    """A Redis that accepts connections but never replies (hung, or a black hole)
    holds one request for one 0.5 s timeout per client (the limiter's, the key
    cache's), not a series of retries; later requests do not try it again."""

    def connections_made(listener: socket.socket) -> int:
        """Connections the kernel completed since the last call (never answered)."""
        listener.setblocking(False)
        made = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return made
            conn.close()
            made += 1

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nothing ever reads them
        port = silent.getsockname()[1]
        client = limited(make_app, f"redis://127.0.0.1:{port}/0", key="3/minute").test_client()
        started = time.monotonic()
        r = client.get(ME, headers=tenant.headers)
        assert r.status_code == 200
        assert time.monotonic() - started > 0.4  # it did wait for an answer
        assert r.headers["RateLimit-Remaining"] == "2"
        # one connection each for the limiter and the API-key cache's epoch: no retries
        assert connections_made(silent) <= 2
        for remaining in (1, 0):  # in memory now: nothing waits for Redis
            assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == str(
                remaining
            )
        assert_rate_limited(client.get(ME, headers=tenant.headers), 3, "this API key")
        assert connections_made(silent) == 0


def test_retry_after_outlasts_every_limit_the_request_went_over(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    client = limited(make_app, key="1/second,1/minute").test_client()
    assert client.get(ME, headers=tenant.headers).status_code == 200
    r = client.get(ME, headers=tenant.headers)
    # Over the minute's limit (and the second's, if still in the same second):
    # retrying after the second's window would only be refused again.
    assert_rate_limited(r, 1, "this API key")
    assert int(r.headers["Retry-After"]) > 30
    assert "1 per 1 minute" in r.get_json()["detail"]


def test_one_redis_call_per_request(
    make_app: AppFactory, own_redis: OwnRedis, tenant: TenantHandle, ops_headers: dict[str, str]
) -> None:
    """The limiter's cost: one script call per request, for an API key's two counters
    (key and tenant) as for an operator's one; the RateLimit-* headers reuse its reply."""
    url = own_redis.start()
    client = limited(
        make_app, url, key="100/minute", tenant="100/minute", operator="100/minute"
    ).test_client()
    assert client.get(ME, headers=tenant.headers).status_code == 200  # connect, load the script
    assert client.get("/ops/v1/tenants", headers=ops_headers).status_code == 200
    with Redis.from_url(url) as direct:

        def calls_after(path: str, headers: dict[str, str]) -> dict[str, int]:
            direct.config_resetstat()
            started = time.monotonic()
            for _ in range(5):
                assert client.get(path, headers=headers).headers["RateLimit-Remaining"]
            took = time.monotonic() - started
            stats = direct.info("commandstats")
            calls = {name: stats[name]["calls"] for name in stats if name != "cmdstat_config"}
            # The API-key cache reads the auth epoch at most every EPOCH_EVERY_S.
            epoch_reads = calls.pop("cmdstat_get", 0)
            assert epoch_reads <= 1 + took / EPOCH_EVERY_S
            return calls

        # EVALSHA is the round trip; INCRBY and PTTL run inside the script.
        assert calls_after(ME, tenant.headers) == {
            "cmdstat_evalsha": 5,
            "cmdstat_incrby": 5 * 2,
            "cmdstat_pttl": 5 * 2,
        }
        assert calls_after("/ops/v1/tenants", ops_headers) == dict.fromkeys(SCRIPT_CALL, 5)


def test_settings_read_rate_limits_and_name_the_variable_when_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMITS", "key=20/second,600/minute; tenant=off")
    rates = Settings.from_env().rate_limits
    assert rates == RateLimits(key="20/second,600/minute", tenant=None, operator="1200/minute")
    assert RateLimits.parse(rates.spec()) == rates
    monkeypatch.setenv("RATE_LIMITS", "off")
    assert Settings.from_env().rate_limits == RateLimits(None, None, None, None)
    monkeypatch.delenv("RATE_LIMITS")
    assert Settings.from_env().rate_limits == RateLimits()
    for bad in ("key", "user=5/minute", "key=lots", "key=0/minute", "key=1/minute;key=2/minute"):
        monkeypatch.setenv("RATE_LIMITS", bad)
        with pytest.raises(ValueError, match=r"^RATE_LIMITS: "):
            Settings.from_env()


def test_a_flushed_script_is_loaded_again_and_counting_stays_in_redis(
    make_app: AppFactory, own_redis: OwnRedis, tenant: TenantHandle
) -> None:
    url = own_redis.start()
    client = limited(make_app, url, key="10/minute").test_client()
    assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "9"
    with Redis.from_url(url) as direct:
        direct.script_flush()  # a restarted or failed-over server knows no scripts
        assert client.get(ME, headers=tenant.headers).headers["RateLimit-Remaining"] == "8"
        (key,) = direct.keys("LIMITS:*")
        assert int(direct.get(key) or 0) == 2  # both requests counted in Redis


def claims(direct: Redis) -> int:
    """The script's runs (its INCRBY: the first EVALSHA on a new server fails NOSCRIPT)."""
    stats = direct.info("commandstats")
    return int(stats.get("cmdstat_incrby", {}).get("calls", 0))


def test_a_busy_counter_is_claimed_in_leases_and_counted_exactly_in_redis(
    make_app: AppFactory, own_redis: OwnRedis, tenant: TenantHandle
) -> None:
    """A key sending many requests claims units in growing leases (at most 1% of the
    limit each): far fewer Redis calls than requests, every request still counted."""
    url = own_redis.start()
    app = limited(make_app, url, key="100000/minute")
    limiter: Limiter = app.extensions["erp_limiter"]
    limiter.lease_s = 3600.0  # every claim counts as quick: the lease doubles each time
    client = app.test_client()
    with Redis.from_url(url) as direct:
        direct.config_resetstat()
        remaining = []
        for _ in range(300):
            r = client.get(ME, headers=tenant.headers)
            assert r.status_code == 200
            remaining.append(int(r.headers["RateLimit-Remaining"]))
        calls = claims(direct)
        (counter,) = direct.keys("LIMITS:*")
        claimed = int(direct.get(counter) or 0)
    # leases of 1, 2, 4, ... 256: nine calls for 300 requests
    assert calls == 9
    assert claimed == 1 + 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256
    # each request's headers count it, claimed or leased
    assert remaining == list(range(99_999, 99_999 - 300, -1))


def test_leases_never_admit_past_the_limit_across_processes(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    """Two processes leasing one key's counter: together they admit at most the
    limit, and at worst a lease (1%) per process less."""
    first = limited(make_app, key="400/minute")
    second = make_app(
        rate_limits=first.config["ERP_SETTINGS"].rate_limits,
        queue_prefix=first.config["ERP_SETTINGS"].queue_prefix,
    )
    clients = []
    for app in (first, second):
        app.extensions["erp_limiter"].lease_s = 3600.0
        clients.append(app.test_client())
    statuses = [clients[n % 2].get(ME, headers=tenant.headers).status_code for n in range(500)]
    admitted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert 400 - 2 * 4 <= admitted <= 400
    # once refused, refused: both processes see the exhausted counter
    assert 200 not in statuses[statuses.index(429) + 2 :]


def test_a_lease_ends_with_its_window(make_app: AppFactory, tenant: TenantHandle) -> None:
    app = limited(make_app, key="1000/second")
    app.extensions["erp_limiter"].lease_s = 3600.0
    client = app.test_client()
    for _ in range(30):  # leases of 1, 2, 4, 8, 10 (the 1% cap)
        assert client.get(ME, headers=tenant.headers).status_code == 200
    time.sleep(1.05)
    r = client.get(ME, headers=tenant.headers)
    # a new window: counted from zero, whatever the old lease had left
    assert int(r.headers["RateLimit-Remaining"]) >= 1000 - 10
    assert int(r.headers["RateLimit-Reset"]) <= 1
