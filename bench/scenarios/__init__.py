"""The registry: every scenario, in the order `erp bench` runs them.

To add one, write `bench/scenarios/<name>.py` defining `SCENARIO = Scenario(...)`
(see bench/README.md) and add its module name here.
"""

from __future__ import annotations

import importlib

from bench.core import Scenario

SCENARIOS: tuple[str, ...] = (
    "rls_overhead",
    "rls_request",
    "me_rps",
    "request_cpu",
    "provision_latency",
    "ledger_post_service",
    "ledger_post_api",
    "ledger_hot_account",
    "ledger_balance_read",
    "ledger_trial_balance",
    "inventory_moves_api",
    "webhooks_delivery",
    "webhooks_latency",
    "inventory_hot_sku",
    "inventory_stream",
    "orders_place",
    "orders_inbound",
)


#: Run only when named (`erp bench serve_models`): studies behind a documented choice,
#: not figures to watch on every run.
EXTRA: tuple[str, ...] = ("serve_models",)


def load(name: str) -> Scenario:
    if name not in SCENARIOS + EXTRA:
        raise KeyError(name)
    module = importlib.import_module(f"bench.scenarios.{name}")
    scenario: Scenario = module.SCENARIO
    if scenario.name != name:
        raise RuntimeError(f"bench/scenarios/{name}.py defines SCENARIO named {scenario.name!r}")
    return scenario
