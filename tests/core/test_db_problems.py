"""A constraint or value PostgreSQL refuses is a documented 4xx/503, never a 500.

Each error is raised by the real server (no fakes), then mapped by the core's
fallbacks in erp.errors.problem_from_db.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import sqlstate
from erp.errors import problem_from_db
from erp.extensions import db
from erp.http import ErpFlask
from tests.core.conftest import AppFactory
from tests.core.helpers import assert_problem

SETUP = """
CREATE TEMP TABLE parent (id int PRIMARY KEY);
CREATE TEMP TABLE child (
    id int PRIMARY KEY,
    parent_id int REFERENCES parent (id),
    code varchar(3) UNIQUE,
    qty int NOT NULL DEFAULT 0 CHECK (qty >= 0)
);
INSERT INTO parent VALUES (1);
INSERT INTO child (id, parent_id, code) VALUES (1, 1, 'abc');
"""

CASES = [
    ("23505", "INSERT INTO child (id, code) VALUES (2, 'abc')", 409, "conflict"),
    ("23503", "INSERT INTO child (id, parent_id) VALUES (3, 99)", 422, "validation"),
    ("23514", "INSERT INTO child (id, qty) VALUES (4, -1)", 422, "validation"),
    ("23502", "INSERT INTO child (id, qty) VALUES (5, NULL)", 422, "validation"),
    ("22P02", "SELECT 'abc'::int", 422, "validation"),
    ("22001", "INSERT INTO child (id, code) VALUES (6, 'abcd')", 422, "validation"),
    ("22021", "SELECT convert_from('\\xff'::bytea, 'UTF8')", 422, "validation"),
    ("22P05", "SELECT '\"\\u0000\"'::jsonb", 422, "validation"),
    ("57014", "SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)", 503, "unavailable"),
]


def _raise(engine: Engine, sql: str) -> DBAPIError:
    with engine.connect() as conn:
        for statement in SETUP.split(";"):
            if statement.strip():
                conn.execute(text(statement))
        *setup, failing = sql.split(";")
        for statement in setup:
            conn.execute(text(statement))
        with pytest.raises(DBAPIError) as caught:
            conn.execute(text(failing))
        conn.rollback()
    return caught.value


@pytest.mark.parametrize(("state", "sql", "status", "slug"), CASES)
def test_a_refused_value_maps_to_a_client_problem(
    owner_engine: Engine, state: str, sql: str, status: int, slug: str
) -> None:
    exc = _raise(owner_engine, sql)
    assert sqlstate(exc) == state
    problem = problem_from_db(exc)
    assert (problem.status, problem.slug) == (status, slug)
    if status == 503:
        assert problem.headers["Retry-After"]


def test_a_locked_row_is_409_with_retry_after(owner_engine: Engine) -> None:
    probe = "public.lock_probe_core_test"
    with owner_engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {probe} (id int PRIMARY KEY)"))
        conn.execute(text(f"INSERT INTO {probe} VALUES (1)"))
    try:
        with owner_engine.connect() as holder, owner_engine.connect() as waiter:
            holder.execute(text(f"SELECT * FROM {probe} WHERE id = 1 FOR UPDATE"))
            with pytest.raises(DBAPIError) as caught:
                waiter.execute(text(f"SELECT * FROM {probe} WHERE id = 1 FOR UPDATE NOWAIT"))
            waiter.rollback()
            holder.rollback()
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {probe}"))
    assert sqlstate(caught.value) == "55P03"
    problem = problem_from_db(caught.value)
    assert (problem.status, problem.slug) == (409, "conflict")
    assert problem.headers["Retry-After"]


def test_a_value_the_driver_refuses_is_422(owner_engine: Engine) -> None:
    """psycopg refuses a NUL in text before sending it: no SQLSTATE, still the client's."""
    with owner_engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT :v"), {"v": "a\x00b"})
    assert sqlstate(caught.value) is None
    assert problem_from_db(caught.value).status == 422


@pytest.fixture
def db_app(make_app: AppFactory) -> ErpFlask:
    """Routes that make the request's own transaction fail the way a domain's could."""
    app = make_app()

    @app.get("/test/sql/<int:case>")
    def run(case: int) -> Any:
        _state, sql, _status, _slug = CASES[case]
        if "child" in sql:
            for statement in SETUP.split(";"):
                if statement.strip():
                    db.session.execute(text(statement))
        for statement in sql.split(";"):
            db.session.execute(text(statement))
        return {}

    return app


@pytest.mark.parametrize("case", range(len(CASES)))
def test_through_the_app_each_is_a_problem_not_a_500(db_app: ErpFlask, case: int) -> None:
    _state, _sql, status, slug = CASES[case]
    r = db_app.test_client().get(f"/test/sql/{case}")
    assert_problem(r, status, slug)
    assert "child" not in r.get_data(as_text=True)  # no database text leaks
