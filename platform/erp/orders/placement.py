"""Placing an order (API.md, Orders: Placing): the rules, no Flask, never commits.

A placement is ONE SQL function call (policies/orders_place.sql, `orders.place_order`):
PostgreSQL deduplicates by (channel, external_id), checks the channel, location,
currency accounts, items, SKUs and tax codes, prices the lines, finds or creates the
customer, writes the order and its lines, reserves every line through
`inventory.reserve` and writes the `order.created` event, in one round trip. Python
checks what the body alone decides (the cross-field rules below) and builds the
parameters; the function answers the order's JSON text, which is the reply as it is.

Refusals: EO101 validation and EO102 conflict (registered in erp/orders/__init__.py),
EI001 insufficient-stock from `inventory.reserve`; each becomes the Problem naming the
field (`lines.0.quantity`, `external_id`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from erp import jsontext
from erp.db import call_one, pg_array
from erp.errors import Problem, refusal

CREATED_EVENT = "order.created"
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class NewOrderLine:
    quantity: int
    unit_price: int
    item_id: uuid.UUID | None = None
    sku: str | None = None
    discount: int = 0
    tax_code: str | None = None
    tax: int | None = None


@dataclass(frozen=True)
class NewShipping:
    amount: int
    tax_code: str | None = None
    tax: int | None = None


@dataclass(frozen=True)
class PlaceOrder:
    """A new order, as `POST /orders` (or a shop's mapped message) gives it."""

    customer_name: str
    customer_email: str
    currency: str
    lines: Sequence[NewOrderLine]
    shipping: NewShipping | None = None
    location_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PlaceOrder:
        """From the loaded `OrderIn` body."""
        shipping = body.get("shipping")
        return cls(
            customer_name=body["customer"]["name"],
            customer_email=body["customer"]["email"],
            currency=body["currency"],
            lines=[NewOrderLine(**line) for line in body["lines"]],
            shipping=None if shipping is None else NewShipping(**shipping),
            location_id=body.get("location_id"),
            channel_id=body.get("channel_id"),
            external_id=body.get("external_id"),
            metadata=body.get("metadata") or {},
        )

    def request_hash(self) -> str:
        """The body's fingerprint for (channel, external_id) deduplication: the same
        order sent again (defaults filled in, keys in any order) hashes the same."""
        try:
            text = orjson.dumps(self, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # an integer past 64 bits in metadata
            text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True)
class Placed:
    """The outcome: `created` (201) or the existing order of the same external_id and
    body (200); `body` is the order's JSON text, as GET /orders/{id} answers it."""

    created: bool
    order_id: uuid.UUID
    body: str

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def check(cmd: PlaceOrder) -> None:
    """The rules the body alone decides (API.md, Placing), every fault named at once:
    exactly one of item_id/sku, at most one of tax_code/tax, discount within the line."""
    errors: dict[str, list[str]] = {}
    for i, line in enumerate(cmd.lines):
        if (line.item_id is None) == (line.sku is None):
            errors[f"lines.{i}.item_id"] = ["Give exactly one of item_id and sku."]
        if line.tax_code is not None and line.tax is not None:
            errors[f"lines.{i}.tax"] = ["Give at most one of tax_code and tax."]
        gross = line.unit_price * line.quantity
        if gross > INT64_MAX:
            errors[f"lines.{i}.quantity"] = [
                f"unit_price * quantity exceeds {INT64_MAX}.",
            ]
        elif line.discount > gross:
            errors[f"lines.{i}.discount"] = [f"Must not exceed unit_price * quantity ({gross})."]
    if (
        cmd.shipping is not None
        and cmd.shipping.tax_code is not None
        and cmd.shipping.tax is not None
    ):
        errors["shipping.tax"] = ["Give at most one of tax_code and tax."]
    if errors:
        first = next(iter(errors))
        detail = f"{first}: {errors[first][0]}" if len(errors) == 1 else None
        raise Problem("validation", detail or "The order failed validation.", errors=errors)


_PLACE = """
    SELECT created, body FROM orders.place_order(
        %(id)s, %(line_ids)s::uuid[], %(reservation_ids)s::uuid[], %(event_id)s,
        %(customer_name)s, %(customer_email)s, %(currency)s, %(channel_id)s, %(external_id)s,
        %(request_hash)s, %(location_id)s, %(metadata)s::jsonb, %(items)s::uuid[],
        %(skus)s::text[], %(quantities)s::bigint[], %(unit_prices)s::bigint[],
        %(discounts)s::bigint[], %(tax_codes)s::text[], %(taxes)s::bigint[], %(shipping)s,
        %(shipping_tax_code)s, %(shipping_tax)s)
"""


def _with_nulls(values: Iterable[uuid.UUID | int | None]) -> str:
    """An array literal of UUIDs or integers, NULL where a value is None."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def place_order(s: Session, cmd: PlaceOrder) -> Placed:
    """Place the order in the caller's transaction (one call), or refuse it with the
    Problem the API answers: 422 `validation`, 409 `conflict` (`external_id` used with
    another body), 409 `insufficient-stock` naming each short line."""
    check(cmd)
    lines = cmd.lines
    order_id = uuid.uuid4()
    shipping = cmd.shipping
    params = {
        "id": order_id,
        "line_ids": pg_array(uuid.uuid4() for _ in lines),
        "reservation_ids": pg_array(uuid.uuid4() for _ in lines),
        "event_id": uuid.uuid4(),
        "customer_name": cmd.customer_name,
        "customer_email": cmd.customer_email,
        "currency": cmd.currency,
        "channel_id": cmd.channel_id,
        "external_id": cmd.external_id,
        "request_hash": cmd.request_hash() if cmd.external_id is not None else None,
        "location_id": cmd.location_id,
        "metadata": jsontext.dumps(cmd.metadata),
        "items": _with_nulls(line.item_id for line in lines),
        "skus": [line.sku for line in lines],
        "quantities": pg_array(line.quantity for line in lines),
        "unit_prices": pg_array(line.unit_price for line in lines),
        "discounts": pg_array(line.discount for line in lines),
        "tax_codes": [line.tax_code for line in lines],
        "taxes": _with_nulls(line.tax for line in lines),
        "shipping": None if shipping is None else shipping.amount,
        "shipping_tax_code": None if shipping is None else shipping.tax_code,
        "shipping_tax": None if shipping is None else shipping.tax,
    }
    try:
        created, body = call_one(s, _PLACE, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise  # retried (40001/40P01) or mapped by the core
    if not created:
        order_id = uuid.UUID(json.loads(body)["id"])
    return Placed(created=bool(created), order_id=order_id, body=body)
