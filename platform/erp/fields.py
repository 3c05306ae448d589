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

    def json_schema(self, ret: dict[str, Any]) -> dict[str, Any]:
        """OpenAPI (erp.openapi): int64, within any narrower Range the field has."""
        return {
            "format": "int64",
            "minimum": ret.get("minimum", INT64_MIN),
            "maximum": ret.get("maximum", INT64_MAX),
        }


class Currency(ma.fields.String):
    default_error_messages = {"currency": "Not an ISO 4217 currency code."}

    def json_schema(self, ret: dict[str, Any]) -> dict[str, Any]:
        return {"enum": sorted(CURRENCIES)}

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


METADATA_KEYS, METADATA_KEY_LEN, METADATA_VALUE_LEN = 50, 64, 500


def _check_metadata(value: dict[str, Any]) -> None:
    if len(value) > METADATA_KEYS:
        raise ma.ValidationError(f"At most {METADATA_KEYS} keys.")
    for key, item in value.items():
        if not 1 <= len(key) <= METADATA_KEY_LEN:
            raise ma.ValidationError(f"Keys are 1-{METADATA_KEY_LEN} characters.")
        if not isinstance(item, str | int | float | bool) or (
            isinstance(item, str) and len(item) > METADATA_VALUE_LEN
        ):
            raise ma.ValidationError(
                f"{key}: values are strings (<= {METADATA_VALUE_LEN}), numbers or booleans."
            )


class Metadata(ma.fields.Dict):
    """API.md, Metadata: at most 50 keys of 1-64 characters; values strings (<= 500
    characters), numbers or booleans. Free-form jsonb, so its limits are checked here."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=ma.fields.String(), validate=_check_metadata, **kwargs)

    def json_schema(self, ret: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": METADATA_KEYS,
            "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_LEN},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": METADATA_VALUE_LEN},
                    {"type": "number"},
                    {"type": "boolean"},
                ]
            },
        }


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A path id: malformed is 422 naming the field (API.md, Errors)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(
            "validation", f"{field} is not a valid UUID.", errors={field: ["Not a valid UUID."]}
        ) from None
