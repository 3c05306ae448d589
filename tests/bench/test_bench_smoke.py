"""The benchmark runner works end to end, on tiny parameters (no timing is asserted).

It runs in a child process: the scenarios start gunicorn, configure the app's
database bindings and logging, and none of that may leak into this test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.scenarios import load

from bench import wrk
from tests import servers

ROOT = Path(__file__).resolve().parents[2]

# Windows are long enough that a loaded machine still completes requests in them: the
# assertions are on counts (> 0), never on timing. wrk and pgbench run whole seconds.
TINY: dict[str, dict[str, object]] = {
    "rls_overhead": {
        "tenants": 10,
        "rows_per_tenant": 100,
        "transactions": 40,
        "warmup": 5,
        "round_size": 20,
    },
    "rls_request": {
        "workers": 1,
        "clients": 2,
        "wrk_threads": 1,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 2.0,
        "rounds": 2,
        "warmup_s": 1.0,
    },
    "me_rps": {"clients": 2, "wrk_threads": 1, "seconds": 2.0, "rounds": 2, "warmup_s": 1.0},
    "request_cpu": {
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 3.0,
        "rounds": 3,
        "warmup_s": 1.0,
    },
    "provision_latency": {"count": 2, "warmup": 0},
    "ledger_post_service": {
        "processes": 2,
        "threads": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
    },
    "ledger_post_api": {
        "workers": 1,
        "clients": 2,
        "wrk_threads": 1,
        "processes": 1,
        "threads": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 3.0,
        "rounds": 1,
        "warmup_s": 1.0,
        "profile_s": 2.0,
    },
    "inventory_moves_api": {
        "workers": 1,
        "clients": 2,
        "wrk_threads": 1,
        "pgbench_jobs": 1,
        "skus": 20,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
    },
    "orders_place": {
        "workers": 1,
        "clients": 2,
        "wrk_threads": 1,
        "pgbench_jobs": 1,
        "skus": 20,
        "customers": 10,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
    },
    "orders_inbound": {
        "workers": 1,
        "clients": 2,
        "wrk_threads": 1,
        "pgbench_jobs": 1,
        "skus": 20,
        "signed": 5000,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
        "rate": 10.0,
        "e2e_seconds": 2.0,
        "e2e_workers": 1,
        "senders": 2,
    },
    "ledger_hot_account": {
        "processes": 1,
        "threads": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
    },
    "ledger_balance_read": {
        "hot_entries": 2000,
        "lines": 4,
        "contra_accounts": 2,
        "days": 30,
        "reads": 20,
        "round_size": 10,
        "warmup": 2,
        "naive_runs": 1,
    },
    "ledger_trial_balance": {
        "entries": 2000,
        "accounts": 20,
        "days": 10,
        "runs": 2,
        "naive_runs": 1,
    },
    "webhooks_delivery": {"events": 20, "endpoints": 2, "batch": 10, "ceiling_posts": 20},
    "webhooks_latency": {"rate": 50.0, "seconds": 0.4, "slow_s": 1.0, "drain_s": 30.0},
    "inventory_hot_sku": {
        "processes": 1,
        "threads": 4,
        "seconds": 2.0,
        "rounds": 1,
        "warmup_s": 0.5,
        "last_units": 5,
    },
    "inventory_stream": {
        "clients": 6,
        "tenants": 2,
        "rate": 10.0,
        "seconds": 1.0,
        "rounds": 1,
        "stream_threads": 16,
        "drain_s": 30.0,
    },
    "serve_models": {
        "configs": ["sync:1x1"],
        "clients": 2,
        "wrk_threads": 1,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 1.0,
        "warmup_s": 1.0,
    },
}

RUN = """
import json, sys
from pathlib import Path
from bench import runner
tiny = json.loads(sys.argv[1])
raise SystemExit(runner.run(list(tiny), quick=True, results_dir=Path(sys.argv[2]), overrides=tiny))
"""

KEYS = {
    "scenario",
    "timestamp",
    "machine",
    "versions",
    "durability",
    "parameters",
    "figures",
    "ceiling",
    "ratio",
    "ratios",
    "checks",
    "ok",
}


def test_every_scenario_is_smoke_tested() -> None:
    from bench.scenarios import EXTRA, SCENARIOS

    assert set(TINY) == set(SCENARIOS + EXTRA)


def test_runner_writes_a_result_per_scenario(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing: .ci/run installs it (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": servers.database_url(),
        "BENCH_REDIS_URL": servers.redis_url(),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(TINY), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    for name, tiny in TINY.items():
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        assert doc.keys() >= KEYS, sorted(KEYS - doc.keys())
        assert doc["scenario"] == name
        assert doc["ok"] is True
        assert tiny.items() <= doc["parameters"].items()
        assert {"cpu_count", "cpu_model", "memory_bytes", "kernel"} <= doc["machine"].keys()
        assert {"python", "postgresql", "psycopg", "sqlalchemy", "flask"} <= doc["versions"].keys()
        assert doc["durability"]["fsync"] == doc["durability"]["synchronous_commit"] == "on"
        assert doc["figures"]
        assert doc["ceiling"]
        assert {"name", "value", "definition"} <= doc["ratio"].keys()
        for row in [*doc["figures"].values(), *doc["ceiling"].values()]:
            assert row["count"] > 0
            assert row["errors"] == 0
        assert f"== {name}" in proc.stdout
    plans = json.loads((tmp_path / "rls_overhead.json").read_text())["plans"]
    assert plans["point"]["rls_index"] == "documents_pkey"
    # the closing table answers every target of issue 15, each from its scenario
    targets = json.loads((tmp_path / "targets.json").read_text())["targets"]
    assert [t["ratio"] is not None for t in targets] == [True] * len(targets), targets
    assert "Issue 15 targets" in proc.stdout
    # a CPU profile of an API worker under load, or the reason there is none
    prof = json.loads((tmp_path / "ledger_post_api.json").read_text())["profile"]
    if "error" not in prof:
        assert prof["samples"] > 0
        assert prof["top"]["self"]
        assert "self, top 10 frames" in proc.stdout
    elif os.environ.get("CI") == "true":
        pytest.fail(f"no CPU profile under CI: {prof['error']}")


def test_the_runner_says_how_to_install_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import runner

    monkeypatch.setattr("shutil.which", lambda _name: None)
    assert runner._missing_tools([load("me_rps")]).startswith(wrk.INSTALL_HINT)
    assert runner._missing_tools([load("ledger_balance_read")]) == ""
