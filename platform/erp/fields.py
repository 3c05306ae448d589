"""Marshmallow fields and helpers shared by every domain's schemas."""

from __future__ import annotations

import functools
import numbers
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


class _Slow(Exception):
    """The fast path met something it leaves to marshmallow."""


#: A field's fast loader: the loaded value of a raw value present in the body.
_Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    #: (data key, output key, field, loader) per load field, in declaration order.
    fields: tuple[tuple[str, str, ma.fields.Field[Any], _Convert], ...]
    keys: frozenset[str]
    #: (bound @validates method, output key) per validated field.
    validators: tuple[tuple[Callable[[Any], Any], str], ...]


class FastLoad(ma.Schema):
    """A schema whose `load` first tries a plain loop over its fields (issue 15).

    `Schema.load` spends most of its time on machinery a hot command's body does not
    need (error stores, partial loading, hook dispatch, a validator object built per
    field per call): ~40 µs of CPU for a two-entry posting. The fast path checks
    the common field types itself (a `str` within its `Length`/`OneOf`, a UUID, a
    `StrictInt` within its `Range`, a list of nested `FastLoad` objects, a
    `Currency`), calls marshmallow's own `Field.deserialize` for any other field,
    runs the schema's `@validates` methods, and gives up at the first doubt: an
    unknown key, a value its check refuses, any `ValidationError`, a
    `many`/`partial`/`unknown` argument, a schema with other hooks. Then the
    ordinary `load` runs from the start and builds the full error report, so a body
    is either loaded exactly as marshmallow loads it or refused exactly as it
    refuses it (tests/core/test_fast_load.py compares the two on generated bodies).
    """

    _fast_plan: _Plan | bool | None = False  # False: not compiled yet; None: never fast

    def try_fast(self, data: Any) -> dict[str, Any] | None:
        """`data` loaded by the fast path, or None where it leaves the body to `load`."""
        plan = self._fast_plan
        if plan is False:
            plan = self._fast_plan = _compile(self)
        if plan is None or type(data) is not dict:
            return None
        try:
            return _fast_load(plan, data)  # type: ignore[arg-type]
        except (_Slow, ma.ValidationError):
            return None

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: Any = None,
        unknown: Any = None,
    ) -> Any:
        if many is None and partial is None and (unknown is None or unknown == self.unknown):
            loaded = self.try_fast(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)


def _compile(schema: ma.Schema) -> _Plan | None:
    hooks = schema._hooks
    if schema.many or schema.partial or schema.unknown != ma.RAISE:
        return None
    if any(hooks[tag] for tag in hooks if tag != "validates"):
        return None
    fields = []
    for name, field in schema.load_fields.items():
        if field.attribute is not None and "." in field.attribute:
            return None
        key = field.data_key if field.data_key is not None else name
        fields.append((key, field.attribute or name, field, _converter(field, key)))
    validators = []
    for attr_name, _, kwargs in hooks.get("validates", []):
        method = getattr(schema, attr_name)
        for name in kwargs["field_names"]:
            field = schema.load_fields[name]
            key = field.data_key if field.data_key is not None else name
            validators.append((functools.partial(method, data_key=key), field.attribute or name))
    return _Plan(tuple(fields), frozenset(f[0] for f in fields), tuple(validators))


def _slow(_: Any = None) -> Any:
    raise _Slow


def _converter(field: ma.fields.Field[Any], key: str) -> _Convert:
    """The fast loader of one field: exact for the types it knows, else marshmallow's."""
    kind = type(field)
    checks: list[Any] = list(field.validators)
    if kind in (ma.fields.String, Currency) and all(
        type(v) in (ma.validate.Length, ma.validate.OneOf) for v in checks
    ):
        lengths = [(v.min, v.max, v.equal) for v in checks if type(v) is ma.validate.Length]
        choices = [v.choices for v in checks if type(v) is ma.validate.OneOf]
        currency = kind is Currency

        def string(value: Any) -> Any:
            if type(value) is not str:
                raise _Slow
            for low, high, equal in lengths:
                n = len(value)
                if (equal is not None and n != equal) or (low is not None and n < low):
                    raise _Slow
                if high is not None and n > high:
                    raise _Slow
            for allowed in choices:
                if value not in allowed:
                    raise _Slow
            if currency and value not in CURRENCIES:
                raise _Slow
            return value

        return string
    if kind is ma.fields.UUID and not checks:

        def a_uuid(value: Any) -> Any:
            if type(value) is not str:
                raise _Slow
            try:
                return uuid.UUID(value)
            except ValueError:
                raise _Slow from None

        return a_uuid
    if kind is StrictInt and all(type(v) is ma.validate.Range for v in checks):
        bounds = [(v.min, v.max, v.min_inclusive, v.max_inclusive) for v in checks]

        def integer(value: Any) -> Any:
            if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
                raise _Slow
            for low, high, low_in, high_in in bounds:
                if low is not None and (value < low if low_in else value <= low):
                    raise _Slow
                if high is not None and (value > high if high_in else value >= high):
                    raise _Slow
            return value

        return integer
    if kind is ma.fields.List and not checks:
        inner = field.inner  # type: ignore[attr-defined]
        if type(inner) is ma.fields.Nested and not inner.validators:
            nested = inner.schema
            if isinstance(nested, FastLoad) and not inner.many and inner.unknown is None:
                plan = _compile(nested)
                if plan is not None:

                    def items(value: Any) -> Any:
                        if type(value) is not list:
                            raise _Slow
                        return [
                            _fast_load(plan, item) if type(item) is dict else _slow()
                            for item in value
                        ]

                    return items
    return lambda value: field.deserialize(value, key)


def _fast_load(plan: _Plan, data: dict[str, Any]) -> dict[str, Any]:
    if not plan.keys.issuperset(data):
        raise _Slow  # an unknown field: marshmallow names it
    out: dict[str, Any] = {}
    for key, attr, field, convert in plan.fields:
        raw = data.get(key, ma.missing)
        if raw is ma.missing or raw is None:
            value = field.deserialize(raw, key, data)  # required, defaults, allow_none
        else:
            value = convert(raw)
        if value is not ma.missing:
            out[attr] = value
    for validate, attr in plan.validators:
        if attr in out:
            validate(out[attr])
    return out
