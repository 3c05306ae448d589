"""erp.db._literal: the one-flight message quotes a command's parameters itself (issue 15);
each literal must mean to PostgreSQL exactly what psycopg's server-side binding means."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erp.db import _literal

TYPED = [
    ("text", st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))),
    ("bigint", st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    ("boolean", st.booleans()),
    ("uuid", st.uuids()),
    (
        "timestamptz",
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))]),
        ),
    ),
]


@pytest.fixture(scope="module")
def conn(owner_url: str) -> Any:
    with psycopg.connect(owner_url, autocommit=True) as c:
        assert c.pgconn.parameter_status(b"standard_conforming_strings") == b"on"
        yield c


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_literal_means_what_the_bound_value_means(conn: Any, data: st.DataObject) -> None:
    pg_type, values = data.draw(st.sampled_from(TYPED))
    value = data.draw(values)
    with psycopg.ClientCursor(conn) as cur:
        literal = _literal(cur, value)
    # no parameters: psycopg sends the text as it is (a % in a literal stays data)
    (as_literal,) = conn.execute(f"SELECT {literal}::{pg_type}").fetchone()
    (as_bound,) = conn.execute(f"SELECT %s::{pg_type}", (value,)).fetchone()
    assert as_literal == as_bound == value
    if pg_type == "bigint":  # after a minus, as an expression may place it
        (negated,) = conn.execute(f"SELECT 0::numeric-{literal}").fetchone()
        assert negated == -value


def test_quotes_backslashes_and_comment_marks_stay_data(conn: Any) -> None:
    with psycopg.ClientCursor(conn) as cur:
        for tricky in ["O'Brien", "'; DROP TABLE x; --", "C:\\path\\", "\\'", "-- not a comment"]:
            (got,) = conn.execute(f"SELECT {_literal(cur, tricky)}::text").fetchone()
            assert got == tricky
        assert conn.execute(f"SELECT 1 -{_literal(cur, -1)}").fetchone() == (2,)
        low = -(2**63)
        assert conn.execute(f"SELECT {_literal(cur, low)}::bigint").fetchone() == (low,)
        assert _literal(cur, None) == "NULL"
        with pytest.raises(psycopg.DataError):
            _literal(cur, "a\x00b")
        # other types: psycopg's own quoting
        assert conn.execute(f"SELECT {_literal(cur, [1, 2])}").fetchone() == ([1, 2],)
        naive = datetime(2026, 12, 1, 9, 0)
        assert conn.execute(f"SELECT {_literal(cur, naive)}").fetchone() == (naive,)
        one = uuid.uuid4()
        assert conn.execute(f"SELECT {_literal(cur, one)}").fetchone() == (one,)
