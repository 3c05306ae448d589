"""The benchmark runner works end to end, on tiny parameters (no timing is asserted).

It runs in a child process: the scenarios start gunicorn, configure the app's
database bindings and logging, and none of that may leak into this test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import servers

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "rls_overhead": {
        "tenants": 10,
        "rows_per_tenant": 100,
        "transactions": 40,
        "warmup": 5,
        "round_size": 20,
    },
    "me_rps": {"clients": 2, "seconds": 0.5, "rounds": 1, "warmup_s": 0.1},
    "provision_latency": {"count": 2, "warmup": 0},
    # pgbench runs whole seconds (at least 1 s, plus a 1 s warm-up) where it is installed
    "ledger_post_service": {
        "processes": 2,
        "threads": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 0.5,
        "rounds": 1,
        "warmup_s": 0.1,
    },
    "ledger_post_api": {
        "processes": 1,
        "threads": 2,
        "clients": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 0.5,
        "rounds": 1,
        "warmup_s": 0.1,
    },
    "ledger_hot_account": {
        "processes": 1,
        "threads": 2,
        "assets": 20,
        "revenues": 2,
        "history": 200,
        "seconds": 0.5,
        "rounds": 1,
        "warmup_s": 0.1,
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


def test_runner_writes_a_result_per_scenario(tmp_path: Path) -> None:
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
