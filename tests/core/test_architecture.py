"""The architecture holds: no import cycles, every domain under the import-linter
contracts, and a new domain is one package that registers itself."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import grimp
import pytest

from erp import create_app
from erp.config import Settings
from erp.db import call_one
from erp.domains import DOMAINS
from erp.extensions import db, queue
from erp.http import ErpFlask
from erp.paths import ROOT
from erp.registry import default_registry, load
from tests.conftest import TenantHandle


def test_no_import_cycles_among_the_platforms_modules() -> None:
    sys.path.insert(0, str(ROOT / "platform"))
    graph = grimp.build_graph("erp")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain:
                cycles.append(" -> ".join((importer, *chain)))
    assert cycles == []


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_every_listed_domain_is_under_the_layer_and_independence_contracts() -> None:
    names = {d.removeprefix("erp.") for d in DOMAINS}
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    assert {m.strip() for m in layers[1].split(":")} == names
    independence = next(c for c in _contracts() if c["type"] == "independence")
    assert set(independence["modules"]) == set(DOMAINS)


def test_the_core_layer_lists_every_core_module() -> None:
    """A core module missing from the lowest layer would escape the contract."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    listed = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    modules = {p.stem for p in (ROOT / "platform" / "erp").glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in (ROOT / "platform" / "erp").glob("*/__init__.py")}
    assert modules | packages == listed


def test_each_domain_registers_what_it_owns() -> None:
    reg = default_registry()
    assert reg.domains == list(DOMAINS)
    assert {"EL001", "EL002", "EL003"} <= set(reg.sqlstates)
    assert "ledger.transaction.posted" in reg.event_types
    assert {"ledger_accounts", "api_keys"} <= set(reg.usage)
    assert "ledger" in reg.sections
    assert "ledger" in {g.name for g in reg.cli_groups}
    assert {"ledger.entries", "webhooks.outbox_events", "iam.audit_log"} <= reg.append_only
    assert "app.lookup_api_key(text,text)" in reg.definers


def test_a_domain_registers_twice_only_by_mistake() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        load([*DOMAINS, "erp.ledger"])


@pytest.fixture(scope="module")
def sample_app(settings: Settings) -> Iterator[ErpFlask]:
    reg = load([*DOMAINS, "tests.core.sample_domain"])
    app = create_app(settings, domains=reg)
    app.config["TESTING"] = True
    yield app
    with app.app_context():
        db.dispose()
        queue.redis.close()


def test_a_new_domain_is_served_from_its_own_package(
    sample_app: ErpFlask, tenant: TenantHandle
) -> None:
    client = sample_app.test_client()
    r = client.post("/api/v1/sample/freeze", headers=tenant.headers)
    assert r.status_code == 409, r.get_json()
    body = r.get_json()
    assert body["type"].endswith("/conflict")
    assert body["errors"] == {"lines.0.note": ["Frozen since Monday."]}
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/sample/freeze" in spec["paths"]


def test_a_one_flight_call_is_its_own_transaction_in_one_message(
    sample_app: ErpFlask, tenant: TenantHandle, settings: Any
) -> None:
    client = sample_app.test_client()
    r = client.post("/api/v1/sample/probe", headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    seen = r.get_json()
    assert seen["tenant"] == str(tenant.id)
    assert seen["statement_timeout"] == f"{settings.db_statement_timeout_ms // 1000}s"
    # BEGIN, the pin, the call and COMMIT reached PostgreSQL as one message.
    message = seen["message"]
    assert message.startswith("BEGIN; SET LOCAL app.tenant_id = ")
    assert message.rstrip().endswith("; COMMIT")
    # With an Idempotency-Key the lookup opened the transaction first: the call joins it.
    keyed = client.post(
        "/api/v1/sample/probe", headers={**tenant.headers, "Idempotency-Key": "k1"}
    ).get_json()
    assert keyed["tenant"] == str(tenant.id)
    assert not keyed["message"].startswith("BEGIN")
    # The next request on the same pooled connection is pinned afresh.
    again = client.post("/api/v1/sample/probe", headers=tenant.headers).get_json()
    assert again["message"].startswith("BEGIN; SET LOCAL")


def test_a_job_runs_a_one_flight_unit_of_work(
    app: ErpFlask, tenant: TenantHandle, settings: Any
) -> None:
    from tests.core.sample_domain import services as sample

    def work(s: Any) -> Any:
        return call_one(s, sample.PROBE, {})

    with app.app_context():
        alone = db.unit_of_work(work, tenant=tenant.id, one_flight=True)
        joined = db.unit_of_work(work, tenant=tenant.id)

        def twice(s: Any) -> Any:
            work(s)
            return work(s)

        with pytest.raises(RuntimeError, match="after its call committed"):
            db.unit_of_work(twice, tenant=tenant.id, one_flight=True)
    tenant_of, message_of = 0, 2  # the probe's columns
    assert alone[message_of].startswith("BEGIN; SET LOCAL app.tenant_id = ")
    assert alone[tenant_of] == joined[tenant_of] == str(tenant.id)
    assert not joined[message_of].startswith("BEGIN")


def test_a_statement_after_a_one_flight_call_is_refused(
    sample_app: ErpFlask, tenant: TenantHandle
) -> None:
    client = sample_app.test_client()
    r = client.post("/api/v1/sample/probe-twice", headers=tenant.headers)
    assert r.status_code == 500
    assert client.post("/api/v1/sample/probe", headers=tenant.headers).status_code == 200


def test_the_default_app_does_not_serve_the_sample_domain(
    client: Any, tenant: TenantHandle
) -> None:
    r = client.post("/api/v1/sample/freeze", headers=tenant.headers)
    assert r.status_code == 404


def test_a_domain_cli_group_is_part_of_erp() -> None:
    from click.testing import CliRunner

    from erp.cli import main

    result = CliRunner().invoke(main, ["ledger", "--help"])
    assert result.exit_code == 0, result.output
    assert "compact" in result.output
    assert "ledger" in CliRunner().invoke(main, ["--help"]).output


def test_a_coroutine_view_is_refused_at_startup(settings: Settings) -> None:
    from erp.extensions import Blueprint
    from erp.registry import Registry

    blp = Blueprint("async_sample", __name__, url_prefix="/api/v1/async-sample")

    @blp.route("/x")
    @blp.response(200)
    async def x() -> dict[str, str]:
        return {}

    domains = Registry()
    domains.blueprint(blp)
    with pytest.raises(TypeError, match="is a coroutine"):
        create_app(settings, domains=domains)
