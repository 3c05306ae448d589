"""The per-transaction pin: tenant, role and the DB_*_TIMEOUT_MS timeouts, in the same
round trip as BEGIN (read off libpq's own trace of the wire protocol)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import Connection, Engine, text

from erp.config import Settings
from erp.db import TenantSession, _pin_sql, make_engine, tenant_context, timeouts_sql

SET = {"statement_timeout": 4321, "lock_timeout": 1234, "idle_in_transaction_session_timeout": 5678}
SHOWN = {name: f"{ms}ms" for name, ms in SET.items()}


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    configured = settings.replace(
        db_statement_timeout_ms=SET["statement_timeout"],
        db_lock_timeout_ms=SET["lock_timeout"],
        db_idle_in_transaction_timeout_ms=SET["idle_in_transaction_session_timeout"],
    )
    made = make_engine(configured, pool_size=1, max_overflow=0)
    yield made
    made.dispose()


def _client_messages(conn: Connection, work: Any) -> list[str]:
    """What the client sent while `work()` ran: one line per protocol message."""
    pgconn = conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            work()
        finally:
            pgconn.untrace()
        trace.seek(0)
        return [line for line in trace.read().splitlines() if line.startswith("F\t")]


@pytest.mark.parametrize("role", [None, "erp_ops"])
def test_begin_the_tenant_and_the_timeouts_go_in_one_message(
    engine: Engine, role: str | None
) -> None:
    tenant = uuid.uuid4()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))  # connect-time statements out of the way
        conn.commit()
        with tenant_context(tenant, role):
            sent = _client_messages(
                conn, lambda: conn.execute(text("SHOW lock_timeout")).scalar_one()
            )
            shown = {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in SET}
            guc = conn.execute(text("SELECT current_setting('app.tenant_id')")).scalar_one()
            user = conn.execute(text("SELECT current_user")).scalar_one()
        conn.rollback()
    assert len(sent) == 2, sent  # the pin, then the statement: one round trip for the pin
    pin, statement = sent
    assert "Query" in pin
    assert f"\"BEGIN; SET LOCAL app.tenant_id = '{tenant}'" in pin
    for name, ms in SET.items():
        assert f"SET LOCAL {name} = {ms}" in pin
    assert ("SET LOCAL ROLE erp_ops" in pin) == (role == "erp_ops")
    assert "SHOW lock_timeout" in statement
    assert shown == SHOWN
    assert guc == str(tenant)
    assert user == (role or "erp_app")


def test_the_pin_bytes_are_built_once(settings: Settings) -> None:
    timeouts = timeouts_sql(settings)
    tenant = str(uuid.uuid4())
    assert _pin_sql(tenant, None, timeouts) is _pin_sql(tenant, None, timeouts)
    assert timeouts == (
        b"SET LOCAL statement_timeout = 30000; SET LOCAL lock_timeout = 10000; "
        b"SET LOCAL idle_in_transaction_session_timeout = 60000"
    )


def test_the_fallback_pin_sets_the_timeouts_too(engine: Engine) -> None:
    """A session joining a transaction pinned for another tenant pins with one SELECT."""
    tenant = uuid.uuid4()
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0"))
        with tenant_context(tenant), TenantSession(bind=conn) as session:
            shown = {name: session.execute(text(f"SHOW {name}")).scalar_one() for name in SET}
            guc = session.execute(text("SELECT current_setting('app.tenant_id')")).scalar_one()
        conn.rollback()
    assert guc == str(tenant), "the fallback ran"
    assert shown == SHOWN
