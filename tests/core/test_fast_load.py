"""FastLoad (erp.fields): a body is loaded exactly as marshmallow loads it, or refused
exactly as marshmallow refuses it (issue 15: the posting's schema in ~7 µs, not ~40)."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException

from erp.fields import Currency, FastLoad, StrictInt, _compile, _fast_load, _Plan
from erp.ledger.schemas import TransactionIn


def marshmallow_load(schema: ma.Schema, body: Any) -> tuple[str, Any]:
    """What plain marshmallow makes of `body` (nested FastLoad schemas included)."""
    for each in _fast_schemas(schema):
        each._fast_plan = None  # never fast
    try:
        return "ok", ma.Schema.load(schema, body)
    except ma.ValidationError as exc:
        return "refused", exc.messages
    finally:
        for each in _fast_schemas(schema):
            each._fast_plan = False


def fast_load(schema: ma.Schema, body: Any) -> tuple[str, Any]:
    try:
        return "ok", schema.load(body)
    except ma.ValidationError as exc:
        return "refused", exc.messages


def _fast_schemas(schema: ma.Schema) -> list[FastLoad]:
    found = [schema] if isinstance(schema, FastLoad) else []
    for field in schema.load_fields.values():
        inner = getattr(field, "inner", field)
        if isinstance(inner, ma.fields.Nested):
            found += _fast_schemas(inner.schema)
    return found


class Line(FastLoad):
    sku = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=8))
    qty = StrictInt(required=True, validate=ma.validate.Range(min=1, max=1000))
    kind = ma.fields.String(load_default="sale", validate=ma.validate.OneOf(["sale", "gift"]))
    code = ma.fields.String(data_key="productCode", attribute="product_code", allow_none=True)

    @ma.validates("qty")
    def _not_13(self, value: int, **_: Any) -> None:
        if value == 13:
            raise ma.ValidationError("Unlucky.")


class Order(FastLoad):
    id = ma.fields.UUID(required=True)
    currency = Currency(required=True)
    exact = ma.fields.String(validate=ma.validate.Length(equal=3))
    lines = ma.fields.List(ma.fields.Nested(Line), required=True)
    note = ma.fields.String(load_default=None, allow_none=True)
    when = ma.fields.AwareDateTime(load_default=None)


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.builds(lambda: str(uuid.uuid4())),
    st.just("not-a-uuid"),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
Field = tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]


def field(good: st.SearchStrategy[Any], *near_misses: Any) -> Field:
    """A field's good values, and its bad ones: near misses of its rules, or junk."""
    return good, st.one_of(st.sampled_from(near_misses), junk) if near_misses else junk


@st.composite
def _spoiled(draw: st.DrawFn, good: dict[str, Any], fields: dict[str, Field]) -> dict[str, Any]:
    """A good object with one field made bad, removed, or an unknown key added."""
    body = dict(good)
    key = draw(st.sampled_from([*fields, "extra"]))
    if key == "extra":
        body[key] = draw(junk)
    elif key in body and draw(st.integers(0, 3)) == 0:
        del body[key]
    else:
        body[key] = draw(fields[key][1])
    return body


def objects(fields: dict[str, Field], *required: str) -> st.SearchStrategy[dict[str, Any]]:
    """Good objects (`required` fields present, others or not), and the same spoiled once."""
    good = st.fixed_dictionaries(
        {k: fields[k][0] for k in required},
        optional={k: v[0] for k, v in fields.items() if k not in required},
    )
    return st.one_of(good, good.flatmap(lambda g: _spoiled(g, fields)))


def good_and_spoiled(s: st.SearchStrategy[dict[str, Any]]) -> Field:
    return s, st.one_of(s.map(lambda d: [d]), junk)


uuids = st.builds(lambda: str(uuid.uuid4()))
entries = objects(
    {
        "account_id": field(uuids, "not-a-uuid", 5, "", str(uuid.uuid4()).upper() + "x"),
        "amount": field(
            st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1).filter(bool),
            0,
            -(2**63),
            2**63,
            1.0,
            True,
            "5",
        ),
        "currency": field(st.sampled_from(["USD", "EUR"]), "usd", "XXX", "", 840),
    },
    "account_id",
    "amount",
    "currency",
)
postings = objects(
    {
        "description": field(st.text(min_size=1, max_size=3) | st.just("x" * 500), "", "x" * 501),
        "status": field(st.sampled_from(["posted", "pending"]), "void", "POSTED"),
        "metadata": field(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)),
        "effective_at": field(
            st.sampled_from(["2026-12-01T09:00:00Z", "2026-12-01T10:00:00+01:00"]),
            "2026-12-01T09:00:00",
            "yesterday",
        ),
        "entries": field(st.lists(entries, max_size=3), [None], {}, [[]]),
    },
    "description",
    "entries",
)
lines = objects(
    {
        "sku": field(st.text(min_size=1, max_size=8), "", "x" * 9),
        "qty": field(
            st.integers(min_value=1, max_value=1000).filter(lambda n: n != 13), 0, 13, 1001
        ),
        "kind": field(st.sampled_from(["sale", "gift"]), "loan", ""),
        "productCode": field(st.text(max_size=3) | st.none()),
    },
    "sku",
    "qty",
)
orders = objects(
    {
        "id": field(uuids, "not-a-uuid"),
        "currency": field(st.sampled_from(["USD", "EUR"]), "ZZZ", "usd"),
        "exact": field(st.text(min_size=3, max_size=3), "ab", "abcd"),
        "lines": field(st.lists(lines, max_size=3), [None], [5]),
        "note": field(st.text(max_size=3) | st.none()),
        "when": field(
            st.sampled_from(["2026-12-01T09:00:00+01:00", "2026-12-01T09:00:00Z"]), "yesterday"
        ),
    },
    "id",
    "currency",
    "lines",
)


@settings(max_examples=400, deadline=None)
@given(body=st.one_of(postings, junk))
def test_the_posting_schema_loads_and_refuses_as_marshmallow_does(body: Any) -> None:
    schema = TransactionIn()
    assert fast_load(schema, body) == marshmallow_load(schema, body)


@settings(max_examples=400, deadline=None)
@given(body=st.one_of(orders, junk))
def test_every_fast_field_kind_loads_and_refuses_as_marshmallow_does(body: Any) -> None:
    schema = Order()
    assert fast_load(schema, body) == marshmallow_load(schema, body)


def test_a_clean_body_takes_the_fast_path() -> None:
    """The comparison above would pass if the fast path never ran: show that it does."""
    schema = TransactionIn()
    body = {
        "description": "rent",
        "entries": [
            {"account_id": str(uuid.uuid4()), "amount": 5, "currency": "USD"},
            {"account_id": str(uuid.uuid4()), "amount": -5, "currency": "USD"},
        ],
    }
    plan = _compile(schema)
    assert isinstance(plan, _Plan)
    assert _fast_load(plan, body) == marshmallow_load(schema, body)[1]


@pytest.mark.parametrize(
    "hook",
    [ma.pre_load, ma.post_load, ma.validates_schema],
)
def test_schemas_with_other_hooks_always_take_marshmallows_path(hook: Any) -> None:
    class Hooked(FastLoad):
        name = ma.fields.String()

        @hook
        def _hook(self, data: Any, **_: Any) -> Any:
            return data

    assert _compile(Hooked()) is None
    assert _compile(Hooked(partial=True)) is None
    assert _compile(Line(unknown=ma.EXCLUDE)) is None


def test_json_text_falls_back_for_what_orjson_refuses() -> None:
    """Metadata may hold integers past 64 bits: JSON text of them, never an error."""
    import json

    from erp import jsontext

    for value in [{"n": 2**64}, {"n": -(2**70), "s": "é"}, {"a": [1, 2.5, None, True]}]:
        assert json.loads(jsontext.dumps(value)) == value
    assert jsontext.dumps({"s": "é"}) == '{"s":"é"}'


def test_the_posting_route_loads_its_body_past_webargs(app: Any) -> None:
    """The parser hands a FastLoad body straight to the fast path, and leaves a body the
    fast path doubts to webargs, whose 422 names the field."""
    from erp.extensions import Blueprint

    parser = Blueprint.ARGUMENTS_PARSER
    schema = TransactionIn()
    good = {
        "description": "rent",
        "entries": [
            {"account_id": str(uuid.uuid4()), "amount": 5, "currency": "USD"},
            {"account_id": str(uuid.uuid4()), "amount": -5, "currency": "USD"},
        ],
    }
    calls = []
    original = schema.try_fast

    def spy(data: Any) -> Any:
        calls.append(data)
        return original(data)

    schema.try_fast = spy  # type: ignore[method-assign]
    with app.test_request_context("/", method="POST", json=good):
        assert parser.parse(schema, location="json") == marshmallow_load(schema, good)[1]
    assert calls == [good]
    bad = {**good, "status": "void"}
    with app.test_request_context("/", method="POST", json=bad), pytest.raises(HTTPException) as e:
        parser.parse(schema, location="json")
    assert e.value.code == 422
    assert "status" in str(e.value.data)  # type: ignore[attr-defined]


def test_json_responses_carry_the_value_flasks_own_provider_would(app: Any) -> None:
    """The app's JSON provider (orjson) answers the same JSON value as Flask's default,
    including for what only Flask's `default` knows, and falls back where orjson
    refuses (integers past 64 bits, non-string keys)."""
    import dataclasses
    import json
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from flask.json.provider import DefaultJSONProvider

    @dataclasses.dataclass
    class Point:
        x: int
        when: date

    plain = DefaultJSONProvider(app)
    values = [
        {"b": 1, "a": [1.5, None, True, "é"], "u": uuid.uuid4()},
        {"when": datetime(2026, 12, 1, 9, 0, tzinfo=UTC), "day": date(2026, 12, 1)},
        {"p": Point(1, date(2026, 1, 2)), "d": Decimal("1.10")},
        {"big": 2**70},
        {1: "int key"},
    ]
    with app.app_context():
        for value in values:
            ours = app.json.response(value)
            theirs = plain.response(value)
            assert json.loads(ours.get_data()) == json.loads(theirs.get_data())
            assert ours.mimetype == "application/json"
