"""Every registered outbox event type has a JSON Schema (erp/event_schemas/, enforced by
`Registry.events`), and real payloads fit the schema served by
`GET /webhooks/event-types`.

The payloads come from each domain's tests: `tests/<domain>/event_payloads.py` holds
`PRODUCERS = {"<type>": produce}`, where `produce(request, client, tenant)` makes the
domain emit at least one event of that type in `tenant` through its real code path
(the API, a job). A registered type without a producer fails here, by name.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import Engine, text

from erp.registry import EVENT_SCHEMAS, Registry, default_registry, load_event_type
from tests.conftest import TenantHandle

Producer = Callable[[pytest.FixtureRequest, Any, TenantHandle], None]
TESTS = Path(__file__).resolve().parent.parent


def producers() -> dict[str, Producer]:
    """Every domain's PRODUCERS (tests/*/event_payloads.py); a type twice is an error."""
    found: dict[str, Producer] = {}
    for path in sorted(TESTS.glob("*/event_payloads.py")):
        module = importlib.import_module(f"tests.{path.parent.name}.event_payloads")
        for name, produce in module.PRODUCERS.items():
            assert name not in found, f"{name} has two producers"
            found[name] = produce
    return found


REGISTERED = sorted(default_registry().event_types)


@pytest.mark.parametrize("event_type", REGISTERED)
def test_real_payloads_fit_the_served_schema(
    event_type: str,
    request: pytest.FixtureRequest,
    client: Any,
    tenant: TenantHandle,
    owner_engine: Engine,
) -> None:
    produce = producers().get(event_type)
    assert produce is not None, (
        f"no test makes a real {event_type!r} payload: add it to PRODUCERS in "
        "tests/<domain>/event_payloads.py (docs/domains.md, Events)"
    )
    produce(request, client, tenant)
    with owner_engine.connect() as conn:
        payloads = (
            conn.execute(
                text(
                    "SELECT payload FROM webhooks.outbox_events "
                    "WHERE tenant_id = :t AND event_type = :type"
                ),
                {"t": tenant.id, "type": event_type},
            )
            .scalars()
            .all()
        )
    assert payloads, f"the producer of {event_type} emitted none"
    served = client.get("/api/v1/webhooks/event-types", headers=tenant.headers).get_json()
    schema = next(t["schema"] for t in served["items"] if t["type"] == event_type)
    for payload in payloads:
        jsonschema.validate(payload, schema, format_checker=jsonschema.FormatChecker())


def test_the_app_registers_what_is_checked_here(client: Any, tenant: TenantHandle) -> None:
    served = client.get("/api/v1/webhooks/event-types", headers=tenant.headers).get_json()
    assert sorted(t["type"] for t in served["items"]) == REGISTERED


def test_every_producer_is_for_a_registered_type() -> None:
    assert set(producers()) <= set(REGISTERED)


@pytest.mark.parametrize("path", sorted(EVENT_SCHEMAS.glob("*.json")), ids=lambda p: p.stem)
def test_every_schema_file_is_a_valid_json_schema(path: Path) -> None:
    """Files for types no domain registers yet (a domain built in parallel) included."""
    event = load_event_type(path.stem)
    jsonschema.Draft202012Validator.check_schema(event.schema)
    assert json.loads(path.read_text())["schema"] == event.schema


def test_a_type_without_a_schema_file_is_refused_at_registration() -> None:
    r = Registry()
    with pytest.raises(ValueError, match=r"event_schemas/order\.nope\.json"):
        r.events("order.nope")
    assert r.event_types == set()
    with pytest.raises(ValueError, match="dotted"):
        r.events("../secrets")
    r.events("ledger.transaction.posted", "ledger.transaction.posted")
    assert r.event_types == {"ledger.transaction.posted"}
    assert r.event_schemas["ledger.transaction.posted"].schema["type"] == "object"


def test_a_malformed_schema_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import erp.registry

    monkeypatch.setattr(erp.registry, "EVENT_SCHEMAS", tmp_path)
    (tmp_path / "a.b.json").write_text('{"description": "x", "schema": {"type": "array"}}')
    (tmp_path / "a.c.json").write_text('{"schema": {"type": "object"}}')
    (tmp_path / "a.d.json").write_text("{nope")
    for name, why in (("a.b", "object"), ("a.c", "description"), ("a.d", "not JSON")):
        with pytest.raises(ValueError, match=why):
            Registry().events(name)


def test_a_domain_may_register_a_type_with_its_schema_in_code() -> None:
    from erp.registry import EventType

    r = Registry()
    r.events(EventType("x.happened", "It happened.", {"type": "object"}))
    assert r.event_schemas["x.happened"].description == "It happened."
    with pytest.raises(ValueError, match="description"):
        r.events(EventType("x.other", " ", {"type": "object"}))
    with pytest.raises(ValueError, match="object"):
        r.events(EventType("x.third", "Third.", {"type": "string"}))
