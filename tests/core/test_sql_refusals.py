"""A domain's SQL refuses with a registered SQLSTATE; the core makes it a problem.

The DETAIL names the fields at fault, one `field.path: message` per line, and the
MESSAGE (written for the client) is then the problem's detail; a DETAIL that names
no field leaves the registered detail and field. `erp.db.call_one`, the fast path
for a command's one SQL call, raises what `session.execute` would.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from erp.db import call_one, is_retryable, pg_array, tenant_context
from erp.errors import problem_from_db, refusal
from erp.extensions import db
from erp.http import ErpFlask
from erp.ledger.models import Account
from tests.conftest import TenantHandle


def _raised(engine: Engine, state: str, message: str, detail: str | None) -> DBAPIError:
    using = f"ERRCODE = '{state}'" + (f", DETAIL = {_literal(detail)}" if detail else "")
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text(f"DO $$ BEGIN RAISE EXCEPTION {_literal(message)} USING {using}; END $$"))
    return caught.value


def _literal(value: str) -> str:
    return "E'" + value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n") + "'"


def test_several_lines_are_several_messages_and_the_message_is_the_detail(
    app_engine: Engine,
) -> None:
    # EL001 is the ledger's `unbalanced` (registered with field "entries")
    exc = _raised(
        app_engine,
        "EL001",
        "Two things are wrong.",
        "entries: USD is off.\nentries: EUR is off.\nentries.0.amount: Too big.",
    )
    problem = refusal(exc)
    assert problem is not None
    assert (problem.slug, problem.status, problem.detail) == (
        "unbalanced",
        422,
        "Two things are wrong.",
    )
    assert problem.errors == {
        "entries": ["USD is off.", "EUR is off."],
        "entries.0.amount": ["Too big."],
    }
    assert problem_from_db(exc).errors == problem.errors


@pytest.mark.parametrize("detail", [None, "no field here", "entries: named\nbut not this line"])
def test_a_detail_naming_no_field_leaves_the_registered_one(
    app_engine: Engine, detail: str | None
) -> None:
    problem = refusal(_raised(app_engine, "EL001", "internal words", detail))
    assert problem is not None
    registered = "Entries must be at least two and sum to zero in each currency."
    assert (problem.detail, problem.errors) == (registered, {"entries": [registered]})


def test_an_unregistered_state_is_no_refusal(app_engine: Engine) -> None:
    assert refusal(_raised(app_engine, "EZ999", "nobody's", "entries: x")) is None
    assert problem_from_db(_raised(app_engine, "EZ999", "nobody's", None)).slug == "internal"


# -- erp.db.call_one ----------------------------------------------------------------------


def _session_call(app: ErpFlask, statement: str, params: dict[str, Any]) -> Any:
    with app.app_context(), tenant_context(None), db.new_session() as s:
        return call_one(s, statement, params)


def test_call_one_returns_the_row(app: ErpFlask) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    row = _session_call(
        app,
        "SELECT %(ids)s::uuid[] AS ids, %(n)s::bigint[] AS n, %(c)s::text[] AS c",
        {"ids": pg_array(ids), "n": pg_array([-(2**63), 2**63 - 1]), "c": ["U,S D", 'x"y']},
    )
    assert tuple(row) == (ids, [-(2**63), 2**63 - 1], ["U,S D", 'x"y'])


@pytest.mark.parametrize(
    ("state", "kind", "retryable"),
    [("23505", IntegrityError, False), ("40P01", DBAPIError, True), ("EL001", DBAPIError, False)],
)
def test_call_one_raises_what_session_execute_would(
    app: ErpFlask, state: str, kind: type[DBAPIError], retryable: bool
) -> None:
    with pytest.raises(kind) as caught:
        _session_call(app, f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{state}'; END $$", {})
    assert isinstance(caught.value.orig, psycopg.Error)
    assert caught.value.orig.sqlstate == state
    assert is_retryable(caught.value) is retryable


def test_call_one_flushes_pending_orm_changes_first(app: ErpFlask, tenant: TenantHandle) -> None:
    with app.app_context(), tenant_context(tenant.id), db.new_session() as s:
        s.add(Account(code="FLUSHED", name="Pending", type="asset", currency="USD"))
        row = call_one(
            s, "SELECT count(*) FROM ledger.accounts WHERE code = %(c)s", {"c": "FLUSHED"}
        )
        s.rollback()
    assert row[0] == 1


def test_call_one_invalidates_a_broken_connection(app: ErpFlask) -> None:
    with app.app_context(), tenant_context(None), db.new_session() as s:
        connection = s.connection()
        with pytest.raises(DBAPIError):
            call_one(s, "SELECT pg_terminate_backend(pg_backend_pid())", {})
        assert connection.invalidated
