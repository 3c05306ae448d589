"""A domain as a newcomer would add one: one package with `register()`, nothing in the core.

Used by tests/core/test_architecture.py; its SQL (a table and a refusal) is made by the
test itself, standing in for "one migration and one policy file".
"""

from __future__ import annotations

from datetime import timedelta

from erp.registry import EventType, Registry


def register(r: Registry) -> None:
    from tests.core.sample_domain import routes

    r.blueprint(routes.blp)
    r.usage_count("sample_notes", "SELECT count(*) FROM iam.api_keys WHERE false")
    r.sqlstate("ES001", "conflict", "The note is frozen.", field="note")
    r.events(
        EventType(
            "sample.noted",
            "A note was taken (tests' sample domain).",
            {"type": "object", "properties": {"note": {"type": "string"}}},
        )
    )
    r.every(timedelta(minutes=5), "tests.core.sample_domain.routes.tick", name="sample.tick")
    r.catalog(append_only=["sample.notes"])
