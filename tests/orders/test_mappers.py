"""Shop payloads -> the POST /orders body (API.md, Sales channels), on Shopify's documented
`orders/create` sample (tests/orders/fixtures/README.md) and variants of it."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erp.currencies import MINOR_UNITS
from erp.errors import PROBLEM_TYPES
from erp.orders.mappers import (
    SHOPIFY_TOPICS,
    MappingError,
    map_generic_order,
    map_shopify_order,
    shopify_action,
    shopify_cancel_external_id,
    to_minor_units,
)

FIXTURES = Path(__file__).parent / "fixtures"
exponent_of = MINOR_UNITS.get


@cache
def _documented() -> str:
    return (FIXTURES / "shopify_orders_create.json").read_text()


def documented() -> dict[str, Any]:
    """A fresh copy of Shopify's documented orders/create sample."""
    payload: dict[str, Any] = json.loads(_documented())
    return payload


def money_set(amount: str, currency: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def tax_line(price: str, rate: float, title: str, currency: str = "USD") -> dict[str, Any]:
    """A `tax_lines` entry as Shopify documents it (`rate` is a JSON float)."""
    return {
        "channel_liable": False,
        "price": price,
        "price_set": money_set(price, currency),
        "rate": rate,
        "title": title,
    }


def allocation(amount: str, currency: str = "USD", index: int = 0) -> dict[str, Any]:
    """A `discount_allocations` entry as Shopify documents it."""
    return {
        "amount": amount,
        "amount_set": money_set(amount, currency),
        "discount_application_index": index,
    }


def reprice(payload: dict[str, Any], currency: str, *prices: str) -> dict[str, Any]:
    """The sample in another currency, its lines at `prices` (shipping at the first)."""
    payload["currency"] = payload["presentment_currency"] = currency
    for item, price in zip(payload["line_items"], prices, strict=True):
        item["price"] = price
        item["price_set"] = money_set(price, currency)
    shipping = payload["shipping_lines"][0]
    shipping["price"] = shipping["discounted_price"] = prices[0]
    return payload


def failure(payload: object) -> MappingError:
    with pytest.raises(MappingError) as caught:
        map_shopify_order(payload, exponent_of)
    return caught.value


# --- the documented sample -----------------------------------------------------------


def test_the_documented_sample_maps_field_by_field() -> None:
    assert map_shopify_order(documented(), exponent_of) == {
        "external_id": "820982911946154508",
        "currency": "USD",
        "customer": {"name": "John Smith", "email": "jon@example.com"},
        "lines": [
            {"sku": "IPOD2008PINK", "quantity": 1, "unit_price": 19900, "discount": 0, "tax": 0},
            {"sku": "IPOD2008PINK", "quantity": 1, "unit_price": 19900, "discount": 0, "tax": 0},
        ],
        "shipping": {"amount": 1000, "tax": 0},
        "metadata": {"shopify_order_number": 1234},
    }


def test_the_mapping_leaves_the_payload_as_it_was() -> None:
    payload = documented()
    before = copy.deepcopy(payload)
    map_shopify_order(payload, exponent_of)
    assert payload == before


def test_the_customer_falls_back_to_the_customer_email_and_to_the_email_as_name() -> None:
    payload = documented()
    payload["email"] = None
    assert map_shopify_order(payload, exponent_of)["customer"] == {
        "name": "John Smith",
        "email": "john@example.com",
    }
    payload = documented()
    payload["customer"]["first_name"] = payload["customer"]["last_name"] = None
    assert map_shopify_order(payload, exponent_of)["customer"] == {
        "name": "jon@example.com",
        "email": "jon@example.com",
    }
    payload["customer"]["last_name"] = "Smith"
    assert map_shopify_order(payload, exponent_of)["customer"]["name"] == "Smith"
    payload = documented()
    payload["customer"] = None
    assert map_shopify_order(payload, exponent_of)["customer"] == {
        "name": "jon@example.com",
        "email": "jon@example.com",
    }


def test_no_email_anywhere_fails() -> None:
    payload = documented()
    payload["email"] = None
    payload["customer"]["email"] = ""
    assert failure(payload).errors == {
        "email": ["Missing: neither `email` nor `customer.email` is given."]
    }


# --- taxes, discounts, shipping --------------------------------------------------------


def taxed(taxes_included: bool) -> dict[str, Any]:
    """Line 0: 2 x 19.99 with two tax lines; line 1: 199.00 with a 5.00 allocation and
    one tax line; shipping 10.00 with its tax."""
    payload = documented()
    payload["taxes_included"] = taxes_included
    first, second = payload["line_items"]
    first.update(quantity=2, price="19.99", price_set=money_set("19.99", "USD"))
    first["tax_lines"] = [tax_line("2.40", 0.06, "State tax"), tax_line("0.81", 0.02, "City tax")]
    second["discount_allocations"] = [allocation("5.00")]
    second["tax_lines"] = [tax_line("11.64", 0.06, "State tax")]
    payload["shipping_lines"][0]["tax_lines"] = [tax_line("0.60", 0.06, "State tax")]
    return payload


def test_taxes_excluded_tax_lines_add_up_and_allocations_discount() -> None:
    body = map_shopify_order(taxed(taxes_included=False), exponent_of)
    assert body["lines"] == [
        {"sku": "IPOD2008PINK", "quantity": 2, "unit_price": 1999, "discount": 0, "tax": 321},
        {"sku": "IPOD2008PINK", "quantity": 1, "unit_price": 19900, "discount": 500, "tax": 1164},
    ]
    assert body["shipping"] == {"amount": 1000, "tax": 60}


def test_taxes_included_the_tax_comes_off_the_price_as_a_discount() -> None:
    body = map_shopify_order(taxed(taxes_included=True), exponent_of)
    assert body["lines"] == [
        {"sku": "IPOD2008PINK", "quantity": 2, "unit_price": 1999, "discount": 321, "tax": 321},
        {"sku": "IPOD2008PINK", "quantity": 1, "unit_price": 19900, "discount": 1664, "tax": 1164},
    ]
    # what the customer pays is the price less the allocations, the tax inside it
    for line, gross in zip(body["lines"], (2 * 1999, 19900 - 500), strict=True):
        assert line["unit_price"] * line["quantity"] - line["discount"] + line["tax"] == gross
    assert body["shipping"] == {"amount": 940, "tax": 60}


def test_shipping_lines_add_up_less_their_discounts() -> None:
    payload = documented()
    payload["shipping_lines"].append(copy.deepcopy(payload["shipping_lines"][0]))
    payload["shipping_lines"][1]["price"] = "4.95"
    payload["shipping_lines"][1]["tax_lines"] = [tax_line("0.30", 0.06, "State tax")]
    payload["shipping_lines"][0]["discount_allocations"] = [allocation("10.00")]
    assert map_shopify_order(payload, exponent_of)["shipping"] == {"amount": 495, "tax": 30}


def test_no_shipping_lines_no_shipping() -> None:
    payload = documented()
    payload["shipping_lines"] = []
    assert "shipping" not in map_shopify_order(payload, exponent_of)


def test_discounts_beyond_the_price_fail() -> None:
    payload = documented()
    payload["line_items"][1]["discount_allocations"] = [allocation("150.00"), allocation("49.01")]
    assert failure(payload).errors == {
        "line_items.1": ["Discounts (19901) exceed price x quantity (19900)."]
    }


def test_19_99_times_3_is_exact() -> None:
    """In binary floating point 19.99 * 100 is 1998.999...; here the price is 1999."""
    assert int(19.99 * 100) == 1998
    payload = documented()
    payload["line_items"][0].update(quantity=3, price="19.99")
    payload["line_items"][0]["discount_allocations"] = [allocation("0.01"), allocation("0.02")]
    line = map_shopify_order(payload, exponent_of)["lines"][0]
    assert (line["unit_price"], line["discount"]) == (1999, 3)
    assert line["unit_price"] * line["quantity"] - line["discount"] == 5994


# --- currencies ------------------------------------------------------------------------


def test_a_currency_without_decimals() -> None:
    payload = reprice(documented(), "JPY", "1500", "2980.00")
    payload["line_items"][1]["discount_allocations"] = [allocation("300", "JPY")]
    body = map_shopify_order(payload, exponent_of)
    assert [(x["unit_price"], x["discount"]) for x in body["lines"]] == [(1500, 0), (2980, 300)]
    assert body["shipping"]["amount"] == 1500
    assert failure(reprice(documented(), "JPY", "1500.5", "2980")).errors == {
        "line_items.0.price": ["More decimal places than the currency has (0)."],
        "shipping_lines.0.price": ["More decimal places than the currency has (0)."],
    }


@pytest.mark.parametrize("currency", ["KWD", "BHD"])
def test_a_currency_with_three_decimals(currency: str) -> None:
    payload = reprice(documented(), currency, "12.345", "0.005")
    payload["line_items"][0]["tax_lines"] = [tax_line("0.617", 0.05, "VAT", currency)]
    body = map_shopify_order(payload, exponent_of)
    assert [x["unit_price"] for x in body["lines"]] == [12345, 5]
    assert body["lines"][0]["tax"] == 617
    assert body["shipping"]["amount"] == 12345
    assert failure(reprice(documented(), currency, "12.3456", "1")).errors["line_items.0.price"]


def test_more_decimals_than_the_currency_has_fail() -> None:
    payload = documented()
    payload["line_items"][0]["price"] = "19.999"
    payload["line_items"][1]["tax_lines"] = [tax_line("0.005", 0.06, "State tax")]
    assert failure(payload).errors == {
        "line_items.0.price": ["More decimal places than the currency has (2)."],
        "line_items.1.tax_lines.0.price": ["More decimal places than the currency has (2)."],
    }


def test_zeros_past_the_exponent_change_nothing() -> None:
    payload = documented()
    payload["line_items"][0]["price"] = "19.990"
    assert map_shopify_order(payload, exponent_of)["lines"][0]["unit_price"] == 1999


@pytest.mark.parametrize("currency", ["XXX", "usd", "", None, 840])
def test_an_unknown_currency_fails(currency: object) -> None:
    payload = documented()
    payload["currency"] = currency
    payload["order_number"] = "1234"
    assert failure(payload).errors == {
        "currency": ["Not a known ISO 4217 currency."],
        "order_number": ["Must be a positive integer."],
    }


# --- what cannot be mapped -------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    [
        199.0,
        199,
        "1.99e2",
        "1.99E2",
        "-1.00",
        "+1.00",
        " 1.00",
        "1,00",
        ".50",
        "5.",
        "NaN",
        "Infinity",
        "0x10",
        "١٩٩",
        True,
        None,
    ],
)
def test_a_price_that_is_not_a_plain_decimal_string_fails(price: object) -> None:
    payload = documented()
    payload["line_items"][0]["price"] = price
    assert failure(payload).errors == {"line_items.0.price": ["Not a decimal string."]}


@pytest.mark.parametrize("sku", [None, "", "   ", 123])
def test_a_line_without_a_sku_fails(sku: object) -> None:
    payload = documented()
    payload["line_items"][0]["sku"] = sku
    problem = failure(payload).problem()
    assert problem == {
        "type": "/problems/validation",
        "title": "Validation failed",
        "detail": "The Shopify order cannot become an order: line_items.0.sku.",
        "errors": {"line_items.0.sku": ["Missing: the line item has no SKU."]},
    }


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", True, None, 2**63])
def test_a_quantity_that_is_not_a_positive_integer_fails(quantity: object) -> None:
    payload = documented()
    payload["line_items"][1]["quantity"] = quantity
    assert failure(payload).errors == {"line_items.1.quantity": ["Must be a positive integer."]}


def test_every_fault_is_named_at_once() -> None:
    payload = documented()
    payload["id"] = "820982911946154508"
    payload["order_number"] = None
    payload["line_items"][0]["sku"] = None
    payload["line_items"][1]["price"] = 199.0
    payload["line_items"][1]["discount_allocations"] = [{"amount": 5}]
    payload["shipping_lines"][0]["tax_lines"] = {"price": "1.00"}
    assert set(failure(payload).errors) == {
        "id",
        "order_number",
        "line_items.0.sku",
        "line_items.1.price",
        "line_items.1.discount_allocations.0.amount",
        "shipping_lines.0.tax_lines",
    }


@pytest.mark.parametrize("line_items", [None, [], "IPOD2008PINK", [["IPOD2008PINK"]]])
def test_no_line_items_fails(line_items: object) -> None:
    payload = documented()
    payload["line_items"] = line_items
    assert failure(payload).errors == {"line_items": ["Must be a non-empty list of line items."]}


@pytest.mark.parametrize("payload", [None, [], "order", 42])
def test_a_payload_that_is_not_an_object_fails(payload: object) -> None:
    assert failure(payload).errors == {"_schema": ["Not an object."]}


def test_the_problem_is_the_documented_validation_problem() -> None:
    error = failure({"id": 1})
    assert (error.slug, error.title) == ("validation", PROBLEM_TYPES["validation"][0])
    assert error.problem("https://erp.example/problems/")["type"] == (
        "https://erp.example/problems/validation"
    )


# --- topics and cancellations ----------------------------------------------------------


def test_what_each_topic_does() -> None:
    assert shopify_action("orders/create") == "place"
    assert shopify_action("orders/cancelled") == "cancel"
    for other in ("orders/updated", "orders/paid", "ORDERS/CREATE", "", None):
        assert shopify_action(other) == "ignore"
    assert set(SHOPIFY_TOPICS) == {"orders/create", "orders/cancelled"}


def test_a_cancellation_names_the_order_by_its_shopify_id() -> None:
    payload = documented()  # orders/cancelled carries the same order object
    assert shopify_cancel_external_id(payload) == "820982911946154508"
    bad: object
    for bad in ({"id": None}, {"id": "820982911946154508"}, {}, [], None, {"id": 0}):
        with pytest.raises(MappingError) as caught:
            shopify_cancel_external_id(bad)
        assert caught.value.errors == {"id": ["Must be a positive integer."]}


# --- generic channels ------------------------------------------------------------------

GENERIC = {
    "external_id": "shop-1001",
    "currency": "USD",
    "customer": {"name": "Ada", "email": "ada@example.com"},
    "lines": [{"sku": "MUG-01", "quantity": 2, "unit_price": 1500}],
}


def test_a_generic_body_passes_as_is() -> None:
    body = map_generic_order(copy.deepcopy(GENERIC))
    assert body == GENERIC
    assert body is not GENERIC


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"external_id": None}, {"external_id": ["Missing data for required field."]}),
        ({"external_id": ""}, {"external_id": ["Must be a string of 1 to 255 characters."]}),
        ({"external_id": "x" * 256}, {"external_id": ["Must be a string of 1 to 255 characters."]}),
        ({"external_id": 1001}, {"external_id": ["Must be a string of 1 to 255 characters."]}),
        ({"channel_id": None}, {"channel_id": ["Unknown field."]}),
    ],
)
def test_a_generic_body_needs_an_external_id_and_no_channel(
    change: dict[str, object], errors: dict[str, list[str]]
) -> None:
    payload = {**GENERIC, **change}
    if change == {"external_id": None}:
        del payload["external_id"]
    with pytest.raises(MappingError) as caught:
        map_generic_order(payload)
    assert caught.value.errors == errors


def test_a_generic_body_that_is_not_an_object_fails() -> None:
    with pytest.raises(MappingError):
        map_generic_order([GENERIC])


# --- exact conversion, as properties ---------------------------------------------------

EXPONENTS = sorted(set(MINOR_UNITS.values()))


@settings(max_examples=300)
@given(
    exponent=st.sampled_from(EXPONENTS),
    minor=st.integers(min_value=0, max_value=2**63 - 1),
    extra_zeros=st.integers(min_value=0, max_value=3),
    trim=st.booleans(),
)
def test_a_decimal_within_the_exponent_converts_exactly_and_round_trips(
    exponent: int, minor: int, extra_zeros: int, trim: bool
) -> None:
    whole, fraction = divmod(minor, 10**exponent)
    digits = str(fraction).zfill(exponent) if exponent else ""
    if trim:
        digits = digits.rstrip("0")
    digits += "0" * extra_zeros if digits or exponent else ""
    text = f"{whole}.{digits}" if digits else str(whole)
    assert to_minor_units(text, exponent) == minor
    assert Decimal(minor).scaleb(-exponent) == Decimal(text)


@settings(max_examples=300)
@given(
    exponent=st.sampled_from(EXPONENTS),
    digits=st.integers(min_value=0, max_value=10**15),
    places=st.integers(min_value=0, max_value=8),
)
def test_any_decimal_converts_exactly_or_not_at_all(
    exponent: int, digits: int, places: int
) -> None:
    value = Decimal(digits).scaleb(-places)
    text = format(value, "f")
    scaled = value.scaleb(exponent)
    if scaled == scaled.to_integral_value():
        assert to_minor_units(text, exponent) == int(scaled)
    else:
        with pytest.raises(ValueError, match="More decimal places"):
            to_minor_units(text, exponent)


@settings(max_examples=200)
@given(
    data=st.data(),
    taxes_included=st.booleans(),
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "BHD"]),
)
def test_line_totals_are_the_payloads_amounts_exactly(
    data: st.DataObject, taxes_included: bool, currency: str
) -> None:
    """Whatever the amounts, subtotal + tax of each mapped line is the line's price x
    quantity less its allocations, with (taxes included) or plus (excluded) its tax, as
    Decimal arithmetic on the payload's strings says."""
    exponent = MINOR_UNITS[currency]
    places = st.decimals(min_value=0, max_value=10**6, places=exponent)
    payload = reprice(documented(), currency, "1", "1")
    payload["taxes_included"] = taxes_included
    expected = []
    for item in payload["line_items"]:
        price = data.draw(places)
        quantity = data.draw(st.integers(min_value=1, max_value=1000))
        taxes = data.draw(st.lists(places, max_size=3))
        allocations = data.draw(st.lists(places, max_size=3))
        if sum(allocations) + (sum(taxes) if taxes_included else 0) > price * quantity:
            allocations, taxes = [], []
        item.update(quantity=quantity, price=format(price, "f"))
        item["tax_lines"] = [tax_line(format(t, "f"), 0.1, "T", currency) for t in taxes]
        item["discount_allocations"] = [allocation(format(a, "f"), currency) for a in allocations]
        gross = price * quantity - sum(allocations) + (0 if taxes_included else sum(taxes))
        expected.append(gross.scaleb(exponent))
    lines = map_shopify_order(payload, exponent_of)["lines"]
    totals = [x["unit_price"] * x["quantity"] - x["discount"] + x["tax"] for x in lines]
    assert totals == expected
