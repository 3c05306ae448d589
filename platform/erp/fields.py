"""Marshmallow fields and helpers shared by every domain's schemas."""

from __future__ import annotations

import numbers
import uuid
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

from erp.currencies import CURRENCIES
from erp.errors import Problem

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class StrictInt(ma.fields.Integer):
    """A JSON integer only: no floats, strings or booleans; int64 range."""

    default_error_messages = {
        "invalid": "Not a valid integer.",
        "range": "Must fit in a signed 64-bit integer.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        if not INT64_MIN <= int(value) <= INT64_MAX:
            raise self.make_error("range")
        return int(value)


class Currency(ma.fields.String):
    default_error_messages = {"currency": "Not an ISO 4217 currency code."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in CURRENCIES:
            raise self.make_error("currency")
        return code


class AwareDateTime(ma.fields.AwareDateTime):
    """RFC 3339 with an offset; naive times are refused rather than guessed.

    Loaded as UTC, so a time the API echoes back is UTC whatever offset was sent.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        return super()._deserialize(value, attr, data, **kwargs).astimezone(UTC)


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A path id: malformed is 422 naming the field (API.md, Errors)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(
            "validation", f"{field} is not a valid UUID.", errors={field: ["Not a valid UUID."]}
        ) from None
