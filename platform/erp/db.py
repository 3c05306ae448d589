"""Engine, sessions and the tenant hook.

Every transaction a `TenantSession` begins first runs one statement that pins
`app.tenant_id` (and, for operator work, the role) *transaction-locally*, from
the context variables below. A pooled connection therefore never carries a
tenant into the next transaction, with or without pgbouncer.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

import psycopg
from flask import Flask, current_app, g, has_app_context
from psycopg import errors as psycopg_errors
from psycopg import generators as psycopg_generators
from psycopg import pq
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from erp.config import Settings, sqlalchemy_url

T = TypeVar("T")

#: The tenant of the current request or job; set only from an authenticated principal.
current_tenant: ContextVar[UUID | None] = ContextVar("erp_current_tenant", default=None)
#: A role to assume for the transaction (``erp_ops`` for operator requests), else None.
current_db_role: ContextVar[str | None] = ContextVar("erp_current_db_role", default=None)

ALLOWED_ROLES = frozenset({"erp_ops"})
#: Schemas holding tenant data; every table in them is under the §3 rules.
TENANT_SCHEMAS = ("iam", "ledger", "inventory", "orders", "webhooks")
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


class PrivilegedLoginError(RuntimeError):
    """The runtime login could bypass row-level security; refuse to run."""


class TenantSession(Session):
    """A session whose transactions are scoped to `current_tenant`."""


class PinnedConnection(psycopg.Connection[Any]):
    """A psycopg connection that sends BEGIN and the tenant pin in one round trip.

    psycopg opens a transaction lazily, with its own BEGIN round trip before the
    first statement. Here that BEGIN carries `SET LOCAL app.tenant_id = ...` (and
    `SET LOCAL ROLE`) for the tenant current at that moment, and records what it
    pinned, so the `after_begin` hook only needs a statement of its own when the
    pin does not match.
    """

    pinned: tuple[str, str | None] | None = None
    #: `SET LOCAL` of the engine's timeouts, sent with every pin (see `timeouts_sql`).
    timeouts: bytes = b""

    def _start_query(self) -> Any:
        idle = self.pgconn.transaction_status == pq.TransactionStatus.IDLE
        if self._autocommit or self._pipeline or not idle:
            yield from super()._start_query()
            return
        if one_flight_state.get() == "committed":
            raise RuntimeError(
                "a one_flight view ran a statement after its call committed "
                "(its work would not be one transaction); drop @one_flight from it"
            )
        want = _wanted_pin()
        pin = _pin_sql(*want, self.timeouts)
        self.pgconn.send_query(self._get_tx_start_command() + b"; " + pin)
        results = yield from psycopg_generators.execute(self.pgconn)
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise psycopg_errors.error_from_result(result, encoding=self.pgconn._encoding)
        self.pinned = want


def _wanted_pin() -> tuple[str, str | None]:
    tenant, role = current_tenant.get(), current_db_role.get()
    if role is not None and role not in ALLOWED_ROLES:
        raise ValueError(f"role {role!r} may not be assumed")
    return ("" if tenant is None else str(tenant), role)


def timeouts_sql(settings: Settings) -> bytes:
    """`SET LOCAL` of each of `Settings.db_timeouts`, for the pin to carry.

    Per transaction, because pgbouncer in transaction mode hands each transaction
    whichever server session is free: a session `SET` at connect would hold on
    one session and leak into other clients' transactions on it.
    """
    return b"; ".join(
        b"SET LOCAL %s = %d" % (name.encode(), int(ms))
        for name, ms in settings.db_timeouts().items()
    )


@functools.lru_cache(maxsize=4096)
def _pin_sql(tenant: str, role: str | None, timeouts: bytes = b"") -> bytes:
    """`SET LOCAL` is `set_config(..., true)` without the planner: transaction-local too.

    `tenant` is '' or `str(UUID)` and `role` one of ALLOWED_ROLES (see `_wanted_pin`),
    so both are safe to inline; they are checked again here all the same. `timeouts`
    is the engine's `timeouts_sql`, built from integers.
    """
    if tenant and str(UUID(tenant)) != tenant:
        raise ValueError("the tenant pin must be a canonical UUID")
    pin = b"SET LOCAL app.tenant_id = '" + tenant.encode() + b"'"
    if timeouts:
        pin += b"; " + timeouts
    if role is None:
        return pin
    if role not in ALLOWED_ROLES:
        raise ValueError(f"role {role!r} may not be assumed")
    return pin + b"; SET LOCAL ROLE " + role.encode()


@event.listens_for(TenantSession, "after_begin")
def _pin_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, PinnedConnection):
        status = dbapi.pgconn.transaction_status
        if status == pq.TransactionStatus.IDLE or dbapi.pinned == _wanted_pin():
            return  # the BEGIN psycopg sends next carries the pin, or already did
    timeouts: dict[str, int] | None = connection.info.get(_TIMEOUTS)
    pin_connection(connection, current_tenant.get(), current_db_role.get(), timeouts)


_TIMEOUTS = "erp_db_timeouts"  # key of the engine's timeouts in each connection's info


def pin_connection(
    connection: Connection,
    tenant: UUID | None,
    role: str | None,
    timeouts: dict[str, int] | None = None,
) -> None:
    """Set the tenant (and role, and `timeouts`) for the rest of this transaction only.

    One statement, as the pin in BEGIN is one round trip.
    """
    if role is not None and role not in ALLOWED_ROLES:
        raise ValueError(f"role {role!r} may not be assumed")
    calls = ["set_config('app.tenant_id', :tenant, true)"]
    params: dict[str, str | None] = {"tenant": "" if tenant is None else str(tenant)}
    if role is not None:
        calls.append("set_config('role', :role, true)")
        params["role"] = role
    for i, (name, ms) in enumerate((timeouts or {}).items()):
        calls.append(f"set_config(:guc{i}, :ms{i}, true)")
        params[f"guc{i}"], params[f"ms{i}"] = name, str(int(ms))
    connection.execute(text("SELECT " + ", ".join(calls)), params)


def bind_tenant(session: Session, tenant: UUID) -> None:
    """Switch the *current* transaction to `tenant` (operator work on one tenant)."""
    session.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})


def set_local_role(session: Session, role: str | None) -> None:
    """Assume `role` for the rest of the transaction, or return to the login role."""
    if role is not None and role not in ALLOWED_ROLES:
        raise ValueError(f"role {role!r} may not be assumed")
    target = role if role is not None else "erp_app"
    session.execute(text("SELECT set_config('role', :r, true)"), {"r": target})


@contextmanager
def tenant_context(tenant: UUID | None, role: str | None = None) -> Iterator[None]:
    """Run a block with the tenant (and role) that new transactions will pin."""
    t_token = current_tenant.set(tenant)
    r_token = current_db_role.set(role)
    try:
        yield
    finally:
        current_db_role.reset(r_token)
        current_tenant.reset(t_token)


def pg_array(values: Iterable[UUID | int]) -> str:
    """A PostgreSQL array literal of UUIDs or integers, to bind as text and cast
    (`%(ids)s::uuid[]`). Their text needs no quoting, and building it costs a tenth
    of what psycopg spends adapting a list, element by element (measured on the
    posting path). Anything else goes as a list: text would need quoting.
    """
    return "{" + ",".join(map(str, values)) + "}"


def _wrapped(statement: str, params: Mapping[str, Any], exc: psycopg.Error) -> StatementError:
    """The driver's error as the SQLAlchemy DBAPIError subclass a statement run through
    SQLAlchemy would raise (retries and the SQLSTATE -> problem mapping expect it)."""
    return DBAPIError.instance(statement, params, exc, psycopg.Error)


#: "armed": the work running is one `call_one`, its last step (`one_flight_scope`);
#: "committed": that call ran as its own transaction, nothing may follow it.
one_flight_state: ContextVar[str | None] = ContextVar("erp_one_flight", default=None)


@contextmanager
def one_flight_scope() -> Iterator[None]:
    """Run a block whose database work is one `call_one`, its last step: when nothing
    ran before it in the transaction, that call is sent with BEGIN, the tenant pin and
    COMMIT as one message (one round trip instead of three; docs/domains.md, "How to
    add a fast command"). A statement after it raises instead of running in a second
    transaction. Views use `erp.http.one_flight`, jobs `unit_of_work(one_flight=True)`."""
    token = one_flight_state.set("armed")
    try:
        yield
    finally:
        one_flight_state.reset(token)


def call_one(session: Session, statement: str, params: Mapping[str, Any]) -> Any:
    """The one row of `statement` (psycopg placeholders, `%(name)s`), run on the
    session's connection in its transaction, past SQLAlchemy's per-statement work
    (compiling, parameter processing, result objects): for a hot path's one SQL
    function call (docs/domains.md, "How to add a fast command"), where that work is
    a measurable share of the request's CPU. Like `session.execute`, it flushes
    pending ORM changes first. A database error is raised as SQLAlchemy's DBAPIError
    subclass, as any statement's is, so retries (40001/40P01), IntegrityError
    handlers and the SQLSTATE -> problem mapping apply unchanged.

    Inside `one_flight_scope`, when the transaction has not begun (no statement ran
    before, nothing pending), the call *is* the transaction: BEGIN,
    the tenant pin, the statement and COMMIT go to PostgreSQL as one message, one
    round trip instead of three. The session's own commit then has nothing to send.
    """
    if (
        one_flight_state.get() == "armed"
        and not session.in_transaction()
        and not (session.new or session.dirty or session.deleted)
    ):
        row = _one_flight(session.get_bind(), statement, params)
        one_flight_state.set("committed")  # a later statement would be a 2nd transaction
        return row
    session.flush()
    connection = session.connection()
    dbapi = cast(psycopg.Connection[Any], connection.connection.dbapi_connection)
    try:
        row = dbapi.execute(statement, params).fetchone()
    except psycopg.Error as exc:
        if dbapi.broken:  # as SQLAlchemy does: the pool must not hand it out again
            connection.invalidate(exc)
        raise _wrapped(statement, params, exc) from exc
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


def changed(s: Session, statement: Any, params: Mapping[str, Any] | None = None) -> int:
    """Run an UPDATE or DELETE on the session: how many rows it changed."""
    result: CursorResult[Any] = s.execute(statement, params)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def call_alone(statement: str, params: Mapping[str, Any]) -> Any:
    """The one row of `statement` run as its own transaction, with no session: BEGIN,
    the pin of the current tenant, the statement and COMMIT as one message, on a
    pooled connection of the current app's engine (`call_one` inside
    `one_flight_scope` without the session a request keeps: for a fast path,
    erp/fastpath.py, whose one database call is all it does)."""
    return _one_flight(db.engine, statement, params)


def _one_flight(bind: Any, statement: str, params: Mapping[str, Any]) -> Any:
    """`BEGIN; <pin>; <statement>; COMMIT` in one simple-protocol message on a pooled
    connection of its own (the session never begins: nothing to commit or release),
    the parameters bound client-side by psycopg (its literal quoting, as safe as
    binding). A failure anywhere (the statement, or a deferred check at COMMIT) rolls
    the whole transaction back and is raised as the statement's error."""
    try:
        pooled = bind.raw_connection()
    except psycopg.Error as exc:
        raise _wrapped(statement, params, exc) from exc
    try:
        dbapi = cast(psycopg.Connection[Any], pooled.driver_connection)
        timeouts = dbapi.timeouts if isinstance(dbapi, PinnedConnection) else b""
        pin = _pin_sql(*_wanted_pin(), timeouts).decode()
        dbapi.autocommit = True  # psycopg adds no BEGIN of its own: the message has it
        try:
            with psycopg.ClientCursor(dbapi) as cur:
                try:
                    if dbapi.pgconn.parameter_status(b"standard_conforming_strings") == b"on":
                        call = statement % {k: _literal(cur, v) for k, v in params.items()}
                        cur.execute(f"BEGIN; {pin}; {call}; COMMIT")
                    else:
                        cur.execute(f"BEGIN; {pin}; {statement}; COMMIT", params)
                except psycopg.Error as exc:
                    if dbapi.broken:
                        pooled.invalidate(exc)
                    elif dbapi.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                        dbapi.execute("ROLLBACK")
                    raise _wrapped(statement, params, exc) from exc
                while cur.description is None:
                    if not cur.nextset():
                        raise RuntimeError("the statement returned no row")
                row = cur.fetchone()
        finally:
            if not dbapi.broken:
                dbapi.autocommit = False
    finally:
        pooled.close()
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


def _literal(cur: psycopg.ClientCursor[Any], value: Any) -> str:
    """`value` as an SQL literal, as psycopg's client-side binding would quote it, for
    the types a command's parameters have, and cheaper: psycopg's per-parameter
    adaptation was a fifth of a posting's database-side CPU in the API process
    (issue 15). Only with standard_conforming_strings on (the caller checks), where a
    quote is the one character a string literal must escape; a NUL is refused as
    psycopg refuses it. Other types go through psycopg's own quoting."""
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is str:
        chars: str = value
        if "\x00" in chars:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return "'" + chars.replace("'", "''") + "'"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        # parenthesised: never "--1" (a comment), and -2**63 stays in range under a cast
        return str(value) if value >= 0 else f"({value})"
    if kind is UUID:
        return f"'{value}'::uuid"
    if kind is datetime and value.tzinfo is not None:
        return f"'{value.isoformat()}'::timestamptz"
    return str(cur.mogrify("%s", (value,)))


def autocommit_row(engine: Engine, statement: str, params: Mapping[str, Any]) -> Any:
    """The first row of `statement` (psycopg placeholders) or None, run outside any
    transaction on a pooled connection, past SQLAlchemy's per-statement work: for the
    lookups that run before a tenant is known (the API-key definer), once per request.
    No BEGIN, no tenant pin: one round trip. Errors are raised as SQLAlchemy's
    DBAPIError subclasses, as any statement's are.
    """
    try:
        pooled = engine.raw_connection()
    except psycopg.Error as exc:  # the pool hands the driver's own error out as is
        raise _wrapped(statement, params, exc) from exc
    try:
        dbapi = cast(psycopg.Connection[Any], pooled.driver_connection)
        dbapi.autocommit = True
        try:
            with dbapi.cursor(row_factory=namedtuple_row) as cur:
                return cur.execute(statement, params).fetchone()
        except psycopg.Error as exc:
            if dbapi.broken:
                pooled.invalidate(exc)
            raise _wrapped(statement, params, exc) from exc
        finally:
            if not dbapi.broken:
                dbapi.autocommit = False
    finally:
        pooled.close()


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and sqlstate(exc) in RETRYABLE_SQLSTATES


def backoff(attempt: int) -> None:
    time.sleep(min(0.2, 0.005 * (2**attempt)) * (0.5 + random.random()))


def make_engine(
    settings: Settings, url: str | None = None, *, check_privileges: bool = True, **overrides: Any
) -> Engine:
    connect_args: dict[str, Any] = {"prepare_threshold": settings.db_prepare_threshold}
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_pre_ping": settings.db_pool_pre_ping,
        "pool_recycle": settings.db_pool_recycle,
        "connect_args": connect_args,
    }
    options.update(overrides)
    engine = create_engine(sqlalchemy_url(url or settings.database_url), **options)
    timeouts, timeouts_pin = settings.db_timeouts(), timeouts_sql(settings)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        conn = PinnedConnection.connect(*cargs, **cparams)
        conn.timeouts = timeouts_pin
        return conn

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # The timeouts are not SET here for the session: the pin sets them in each
        # transaction (for the fallback pin, they are kept in the connection's info).
        record.info[_TIMEOUTS] = timeouts
        with dbapi_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")  # timestamps leave the database in UTC
        dbapi_conn.commit()

    if check_privileges:

        @event.listens_for(engine, "first_connect")
        def _refuse_privileged(dbapi_conn: Any, _record: Any) -> None:
            if any(_login_privileges(dbapi_conn)):
                raise PrivilegedLoginError(_PRIVILEGED)

    return engine


def _login_privileges(dbapi_conn: Any) -> tuple[bool, bool]:
    """(superuser, bypassrls) of the login of a fresh driver connection."""
    with dbapi_conn.cursor() as cur:
        cur.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        superuser, bypass = cur.fetchone()
    dbapi_conn.rollback()
    return bool(superuser), bool(bypass)


_PRIVILEGED = (
    "DATABASE_URL logs in as a superuser or a BYPASSRLS role; "
    "use the erp_app login (see README, Roles)"
)


def assert_unprivileged(engine: Engine) -> None:
    """Refuse a runtime login that is a superuser or may bypass RLS."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        conn.rollback()
    if row.rolsuper or row.rolbypassrls:
        raise PrivilegedLoginError(_PRIVILEGED)


class _Binding:
    """One engine, its session factory, and the process that opened them."""

    def __init__(self, settings: Settings, **engine_overrides: Any) -> None:
        self.settings = settings
        ceiling = settings.bench_rls_ceiling
        self.engine = make_engine(settings, check_privileges=not ceiling, **engine_overrides)
        self.factory = sessionmaker(
            bind=self.engine,
            class_=TenantSession,
            expire_on_commit=False,
            autoflush=True,
            info={EXPLICIT_TENANT: True} if ceiling else {},
        )
        if ceiling:
            _bench_rls_ceiling(self.engine, self.factory)
        self.pid = os.getpid()


#: In a session's info: tenant queries must filter by `current_tenant` themselves.
EXPLICIT_TENANT = "erp_explicit_tenant"


def explicit_tenant(session: Session) -> UUID | None:
    """The tenant a hand-written query must filter by, or None (always, except in the
    bench's RLS ceiling): RLS filters every query by the pinned tenant."""
    return current_tenant.get() if session.info.get(EXPLICIT_TENANT) else None


def _bench_rls_ceiling(engine: Engine, factory: sessionmaker[TenantSession]) -> None:
    """Settings.bench_rls_ceiling: accept only a BYPASSRLS login that is no superuser,
    and add `tenant_id = <current tenant>` to every ORM read of tenant tables (its
    entities; raw SQL asks `explicit_tenant`), so a request reads what RLS would let it."""
    from sqlalchemy.orm import ORMExecuteState, with_loader_criteria

    @event.listens_for(engine, "first_connect")
    def _bypassrls_only(dbapi_conn: Any, _record: Any) -> None:
        superuser, bypass = _login_privileges(dbapi_conn)
        if superuser or not bypass:
            raise PrivilegedLoginError("the RLS ceiling needs a BYPASSRLS login, no superuser")

    @event.listens_for(factory, "do_orm_execute")
    def _filter_by_tenant(state: ORMExecuteState) -> None:
        tenant = current_tenant.get()
        if not state.is_select or tenant is None:
            return
        for mapper in state.all_mappers:  # not TenantScoped: erp.model_base imports this module
            if "tenant_id" in mapper.columns:
                state.statement = state.statement.options(
                    with_loader_criteria(
                        mapper.class_, lambda cls: cls.tenant_id == tenant, include_aliases=True
                    )
                )


_scoped_binding: ContextVar[_Binding | None] = ContextVar("erp_scoped_binding", default=None)


class Database:
    """Engines and session factories.

    `create_app` gives each app its own (`init_app`), used inside that app's context,
    so two apps in one process (tests, another configuration) never swap engines.
    Outside any app (CLI commands, RQ workers) the process default set by
    `configure` is used; the first app becomes the default when there is none.
    """

    _KEY = "erp_db"

    def __init__(self) -> None:
        self._default: _Binding | None = None

    def configure(self, settings: Settings, **engine_overrides: Any) -> None:
        self._default = _Binding(settings, **engine_overrides)

    def init_app(self, app: Flask, settings: Settings, **engine_overrides: Any) -> None:
        binding = _Binding(settings, **engine_overrides)
        app.extensions[self._KEY] = binding
        if self._default is None:
            self._default = binding

    @contextmanager
    def using(self, settings: Settings, **engine_overrides: Any) -> Iterator[None]:
        """Run a block on an engine of its own (CLI commands, `erp dev`'s seeding),
        whatever app context is pushed, and dispose of it after: the block never uses,
        nor disposes, an app's pool (disposing a pool with a connection still checked
        out strands that connection unclosed)."""
        binding = _Binding(settings, **engine_overrides)
        token = _scoped_binding.set(binding)
        try:
            yield
        finally:
            _scoped_binding.reset(token)
            binding.engine.dispose()

    def _binding(self) -> _Binding:
        scoped = _scoped_binding.get()
        if scoped is not None:
            return scoped
        if has_app_context():
            bound: _Binding | None = current_app.extensions.get(self._KEY)
            if bound is not None:
                return bound
        if self._default is None:
            raise RuntimeError("database is not configured")
        return self._default

    @property
    def engine(self) -> Engine:
        return self._binding().engine

    @property
    def settings(self) -> Settings:
        """The settings this process's (or the current app's) database was configured with."""
        return self._binding().settings

    def new_session(self) -> TenantSession:
        return self._binding().factory()

    @property
    def session(self) -> TenantSession:
        """The current request's session (one transaction per request)."""
        s: TenantSession | None = g.get("_erp_session")
        if s is None:
            s = self.new_session()
            g._erp_session = s
        return s

    def unit_of_work(
        self,
        fn: Callable[[Session], T],
        *,
        tenant: UUID | None,
        role: str | None = None,
        attempts: int = 5,
        one_flight: bool = False,
    ) -> T:
        """Run `fn` in one committed transaction, re-running it on 40001/40P01.

        `one_flight`: `fn`'s database work is one `call_one`, its last step; it then
        goes as one message with BEGIN and COMMIT (`one_flight_scope`)."""
        for attempt in range(attempts):
            with tenant_context(tenant, role), self.new_session() as s:
                try:
                    if one_flight:
                        with one_flight_scope():
                            result = fn(s)
                    else:
                        result = fn(s)
                    s.commit()
                    return result
                except DBAPIError as exc:
                    s.rollback()
                    if not is_retryable(exc) or attempt == attempts - 1:
                        raise
            backoff(attempt)
        raise AssertionError("unreachable")

    def fork_safe(self) -> None:
        """In a forked child (an RQ work horse), drop the parent's pooled sockets."""
        binding = self._binding()
        if binding.pid != os.getpid():
            binding.engine.dispose(close=False)
            binding.pid = os.getpid()

    def dispose(self, close: bool = True) -> None:
        """Close the pooled connections of the current app's engine, or of the default."""
        try:
            binding = self._binding()
        except RuntimeError:  # never configured: nothing to close
            return
        binding.engine.dispose(close=close)


#: The process's database; `erp.extensions` re-exports it with the other extensions.
db = Database()


@contextmanager
def acting_in_tenant(session: Session, tenant: UUID) -> Iterator[None]:
    """Inside an operator transaction, do tenant-side work as erp_app for `tenant` only.

    The transaction's role drops back to the login role (RLS applies) and the
    tenant GUC names `tenant`; both are restored afterwards.
    """
    role = current_db_role.get()
    session.flush()
    token = current_tenant.set(tenant)
    try:
        set_local_role(session, None)
        bind_tenant(session, tenant)
        yield
        session.flush()
        # Deferred constraint triggers (the ledger's balance check) run at COMMIT with
        # whatever tenant is set then: fire them now, while this tenant is set.
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        session.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
        set_local_role(session, role)
    finally:
        current_tenant.reset(token)
