"""A domain's SQL refuses with a registered SQLSTATE; the core makes it a problem.

The DETAIL names the fields at fault, one `field.path: message` per line, and the
MESSAGE (written for the client) is then the problem's detail; a DETAIL that names
no field leaves the registered detail and field. `erp.db.call_one`, the fast path
for a command's one SQL call, raises what `session.execute` would.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.errors import problem_from_db, refusal


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
