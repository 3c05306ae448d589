"""The `inventory:` template section: validated on load, applied once per tenant."""

from __future__ import annotations

from typing import Any

import pytest

from erp.inventory.provisioning import validate
from erp.templates import TemplateError, load_template, parse_template
from tests.inventory.conftest import Stock


def test_the_default_template_gives_main_as_the_default() -> None:
    section = load_template("default").sections["inventory"]
    assert section == {
        "locations": [
            {"code": "MAIN", "name": "Main warehouse", "kind": "warehouse", "default": True}
        ]
    }


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({}, "must be a mapping with one key, locations"),
        ({"locations": []}, "locations: must be a non-empty list"),
        (
            {"locations": [{"code": "Z", "name": "z", "kind": "zone"}]},
            "locations[0].parent: must name a warehouse listed before it",
        ),
        (
            {"locations": [{"code": "W", "name": "w", "kind": "warehouse", "parent": "X"}]},
            "locations[0].parent: a warehouse has no parent",
        ),
        (
            {"locations": [{"code": "W", "name": "w", "kind": "shed"}]},
            "locations[0].kind: one of warehouse, zone, bin",
        ),
        (
            {"locations": [{"code": "W", "name": "w", "kind": "warehouse", "colour": "red"}]},
            "locations[0].colour: unknown field",
        ),
        (
            {
                "locations": [
                    {"code": "W", "name": "w", "kind": "warehouse", "default": True},
                    {"code": "V", "name": "v", "kind": "warehouse", "default": True},
                ]
            },
            "locations: at most one location is the default",
        ),
    ],
)
def test_bad_sections_are_refused(section: Any, problem: str) -> None:
    assert problem in validate(section)


def test_a_bad_section_fails_the_template_load() -> None:
    with pytest.raises(TemplateError, match=r"inventory\.locations\[0\]\.kind"):
        parse_template(
            "t", "inventory:\n  locations:\n    - {code: A, name: a, kind: x}\n", "t.yaml"
        )


def test_provisioning_writes_the_stock_currency_and_one_default(stock: Stock) -> None:
    assert stock.one("SELECT currency FROM inventory.settings") == "USD"
    assert stock.one("SELECT count(*) FROM inventory.locations WHERE is_default") == 1
