"""Shop payloads -> the `POST /orders` body (API.md, Sales channels: the kinds' table).

Pure functions over decoded JSON: no database, no Flask. A payload that cannot become an
order raises MappingError, which the intake job stores as the inbound message's `error`
(a problem object) so the message is `failed`, never half applied. The full rules of an
order (SKUs known, totals in range, ...) are placement's, through the API's schema; here
only what the mapping itself needs.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Mapping
from typing import Literal, NoReturn, NotRequired, TypedDict

#: The `validation` problem of erp.errors.PROBLEM_TYPES (a test keeps them equal): that
#: module is the web layer's, and this one stays importable without Flask.
SLUG = "validation"
TITLE = "Validation failed"

MAX_EXTERNAL_ID = 255
_INT64_MAX = 2**63 - 1

#: A Shopify money amount: digits, optionally a point and digits. No sign, no exponent,
#: no spaces, not a JSON number: what Shopify sends, and nothing a float could become.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,18})(\.[0-9]{1,18})?")
#: Precision enough for the 19+18 digits the pattern admits; any rounding is an error.
#: (Rounded alone is fine: `"19.990"` loses a zero on the way to 1999.)
_EXACT = decimal.Context(prec=40, traps=[decimal.Inexact, decimal.InvalidOperation])


class ProblemDict(TypedDict):
    type: str
    title: str
    detail: str
    errors: dict[str, list[str]]


class MappingError(Exception):
    """A payload that does not map to an order: `errors` names each field at fault by
    its path in the payload (`line_items.0.sku`), as problems name a body's fields."""

    slug = SLUG
    title = TITLE

    def __init__(self, detail: str, errors: Mapping[str, list[str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = {field: list(messages) for field, messages in errors.items()}

    def problem(self, base: str = "/problems/") -> ProblemDict:
        """The problem object stored as a failed message's `error` (API.md, Channels);
        `base` is the app's PROBLEM_BASE_URI."""
        return {
            "type": f"{base}{self.slug}",
            "title": self.title,
            "detail": self.detail,
            "errors": {field: list(messages) for field, messages in self.errors.items()},
        }


class Customer(TypedDict):
    name: str
    email: str


class Line(TypedDict):
    sku: str
    quantity: int
    unit_price: int
    discount: int
    tax: int


class Shipping(TypedDict):
    amount: int
    tax: int


class ShopifyMetadata(TypedDict):
    shopify_order_number: int


class ShopifyOrderBody(TypedDict):
    """The `POST /orders` body a Shopify `orders/create` payload maps to."""

    external_id: str
    currency: str
    customer: Customer
    lines: list[Line]
    shipping: NotRequired[Shipping]
    metadata: ShopifyMetadata


ShopifyAction = Literal["place", "cancel", "ignore"]

#: What an `X-Shopify-Topic` does (API.md): any topic not listed is stored as `ignored`.
SHOPIFY_TOPICS: Mapping[str, ShopifyAction] = {
    "orders/create": "place",
    "orders/cancelled": "cancel",
}


def shopify_action(topic: str | None) -> ShopifyAction:
    """`place`, `cancel` or `ignore` for an `X-Shopify-Topic` header (absent: ignore)."""
    return SHOPIFY_TOPICS.get(topic or "", "ignore")


class _Errors:
    """Collects every field's messages, so one failed message says all that is wrong."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def raise_any(self, what: str) -> None:
        if self.by_field:
            self.fail(what)

    def fail(self, what: str) -> NoReturn:
        fields = ", ".join(sorted(self.by_field))
        raise MappingError(f"The {what} cannot become an order: {fields}.", self.by_field)


def to_minor_units(amount: object, exponent: int) -> int:
    """A decimal string (`"19.99"`) as an exact integer of minor units (`1999` for an
    exponent of 2). ValueError, with the message to show, when it is not a plain decimal
    string (a JSON number, exponent notation, a sign) or has a non-zero digit beyond
    the currency's exponent. Zeros past the exponent change nothing (`"1000.00"` JPY is
    1000), so they are accepted: the conversion is exact either way."""
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise ValueError("Not a decimal string.")
    try:
        minor = _EXACT.to_integral_exact(_EXACT.scaleb(decimal.Decimal(amount), exponent))
    except decimal.Inexact:
        raise ValueError(f"More decimal places than the currency has ({exponent}).") from None
    if minor > _INT64_MAX:
        raise ValueError("Out of range.")
    return int(minor)


def _mapping(value: object) -> Mapping[str, object] | None:
    return value if isinstance(value, Mapping) else None


def _items(value: object) -> list[Mapping[str, object]] | None:
    """A JSON array of objects, else None."""
    if not isinstance(value, list):
        return None
    found = [item for item in value if isinstance(item, Mapping)]
    return found if len(found) == len(value) else None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _positive_int(value: object) -> int | None:
    """A JSON integer (not a boolean) in 1..2**63-1, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= _INT64_MAX else None


def _sum_amounts(entries: object, key: str, path: str, exponent: int, errors: _Errors) -> int:
    """The exact sum of `entries[].key` (tax lines' `price`, allocations' `amount`);
    an absent or null list sums to 0."""
    if entries is None:
        return 0
    items = _items(entries)
    if items is None:
        errors.add(path, "Not a list of objects.")
        return 0
    total = 0
    for i, entry in enumerate(items):
        try:
            total += to_minor_units(entry.get(key), exponent)
        except ValueError as exc:
            errors.add(f"{path}.{i}.{key}", str(exc))
    return total


def _customer(payload: Mapping[str, object], errors: _Errors) -> Customer:
    customer = _mapping(payload.get("customer")) or {}
    email = _text(payload.get("email")) or _text(customer.get("email"))
    full = " ".join(
        part
        for part in (_text(customer.get("first_name")), _text(customer.get("last_name")))
        if part
    )
    if not email:
        errors.add("email", "Missing: neither `email` nor `customer.email` is given.")
    return {"name": full or email, "email": email}


def _line(
    item: Mapping[str, object],
    path: str,
    exponent: int,
    taxes_included: bool,
    errors: _Errors,
) -> Line:
    sku = item.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        errors.add(f"{path}.sku", "Missing: the line item has no SKU.")
        sku = ""
    count = _positive_int(item.get("quantity")) or 0
    if not count:
        errors.add(f"{path}.quantity", "Must be a positive integer.")
    try:
        unit_price = to_minor_units(item.get("price"), exponent)
    except ValueError as exc:
        errors.add(f"{path}.price", str(exc))
        unit_price = 0
    tax = _sum_amounts(item.get("tax_lines"), "price", f"{path}.tax_lines", exponent, errors)
    discount = _sum_amounts(
        item.get("discount_allocations"),
        "amount",
        f"{path}.discount_allocations",
        exponent,
        errors,
    )
    if taxes_included:
        # The price includes the tax: take it off, so subtotal = price x qty - allocations
        # - tax, and the tax is booked once, as tax (API.md, the shopify row).
        discount += tax
    if count > 0 and discount > unit_price * count:
        errors.add(
            path,
            f"Discounts{' and included tax' if taxes_included else ''} ({discount}) exceed "
            f"price x quantity ({unit_price * count}).",
        )
    return {
        "sku": sku,
        "quantity": count,
        "unit_price": unit_price,
        "discount": discount,
        "tax": tax,
    }


def _shipping(
    entries: list[Mapping[str, object]], exponent: int, taxes_included: bool, errors: _Errors
) -> Shipping:
    """Every shipping line as one non-stock charge. Their `discount_allocations` (a free
    shipping code) come off the amount, since `shipping` has no discount of its own;
    with `taxes_included` the tax does too, as prices in the API exclude tax."""
    amount = tax = 0
    for i, entry in enumerate(entries):
        path = f"shipping_lines.{i}"
        try:
            amount += to_minor_units(entry.get("price"), exponent)
        except ValueError as exc:
            errors.add(f"{path}.price", str(exc))
        tax += _sum_amounts(entry.get("tax_lines"), "price", f"{path}.tax_lines", exponent, errors)
        amount -= _sum_amounts(
            entry.get("discount_allocations"),
            "amount",
            f"{path}.discount_allocations",
            exponent,
            errors,
        )
    if taxes_included:
        amount -= tax
    if amount < 0:
        errors.add("shipping_lines", "Discounts and included tax exceed the shipping price.")
    return {"amount": max(amount, 0), "tax": tax}


def map_shopify_order(
    payload: object, currency_exponent: Callable[[str], int | None]
) -> ShopifyOrderBody:
    """Shopify's `orders/create` payload as the `POST /orders` body (API.md, the shopify
    row). `currency_exponent` gives a currency's ISO 4217 minor-unit exponent, None for
    one it does not know (erp.currencies.MINOR_UNITS.get)."""
    order = _mapping(payload)
    if order is None:
        raise MappingError("The payload is not a JSON object.", {"_schema": ["Not an object."]})
    errors = _Errors()
    order_id = _positive_int(order.get("id"))
    if order_id is None:
        errors.add("id", "Must be a positive integer.")
    order_number = _positive_int(order.get("order_number"))
    if order_number is None:
        errors.add("order_number", "Must be a positive integer.")
    currency = order.get("currency")
    exponent = currency_exponent(currency) if isinstance(currency, str) else None
    if exponent is None:
        errors.add("currency", "Not a known ISO 4217 currency.")
        # Without an exponent no amount can be read: stop here rather than report each.
        errors.fail("Shopify order")
    taxes_included = order.get("taxes_included") is True
    customer = _customer(order, errors)
    lines: list[Line] = []
    items = _items(order.get("line_items"))
    if not items:
        errors.add("line_items", "Must be a non-empty list of line items.")
    for i, item in enumerate(items or []):
        lines.append(_line(item, f"line_items.{i}", exponent, taxes_included, errors))
    shipping_items = _items(order.get("shipping_lines") or [])
    if shipping_items is None:
        errors.add("shipping_lines", "Not a list of objects.")
    shipping = _shipping(shipping_items or [], exponent, taxes_included, errors)
    errors.raise_any("Shopify order")
    body: ShopifyOrderBody = {
        "external_id": str(order_id),
        "currency": str(currency),
        "customer": customer,
        "lines": lines,
        "metadata": {"shopify_order_number": order_number or 0},
    }
    if shipping_items:
        body["shipping"] = shipping
    return body


def shopify_cancel_external_id(payload: object) -> str:
    """The `external_id` of the order an `orders/cancelled` payload cancels: its `id`."""
    order = _mapping(payload)
    order_id = _positive_int(order.get("id")) if order is not None else None
    if order_id is None:
        raise MappingError(
            "The Shopify cancellation names no order: id.", {"id": ["Must be a positive integer."]}
        )
    return str(order_id)


def map_generic_order(payload: object) -> dict[str, object]:
    """A `generic` channel's body: our own `POST /orders` JSON, with `external_id`
    required and `channel_id` absent (the channel is the one it was sent to). Only those
    two rules here; placement validates the rest through the API's schema."""
    order = _mapping(payload)
    if order is None:
        raise MappingError("The payload is not a JSON object.", {"_schema": ["Not an object."]})
    errors = _Errors()
    external_id = order.get("external_id")
    if external_id is None:
        errors.add("external_id", "Missing data for required field.")
    elif not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_EXTERNAL_ID:
        errors.add("external_id", f"Must be a string of 1 to {MAX_EXTERNAL_ID} characters.")
    if "channel_id" in order:
        errors.add("channel_id", "Unknown field.")
    errors.raise_any("message")
    return dict(order)
