"""Idempotency-Key handling shared by every creating endpoint (API.md, Idempotency).

One mechanism: the route is wrapped by `@idempotent`. Inside the request's own
transaction it takes a transaction-scoped advisory lock on (scope, key): a second
request with the key while the first runs cannot take it and gets 409
`idempotency-in-flight`. With the lock held it looks for a stored result: same
fingerprint -> replay it; another fingerprint -> 409 `idempotency-mismatch`.
Otherwise the route runs, and a 2xx result is stored in the *same* transaction,
so the record exists exactly when the work it describes was committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ParamSpec, overload

from flask import current_app, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.db import changed
from erp.errors import Problem
from erp.extensions import db
from erp.principals import current_principal

P = ParamSpec("P")
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
RETENTION = "interval '48 hours'"


def validate_key(key: str) -> None:
    if not 1 <= len(key) <= 255 or not all(0x20 <= ord(c) < 0x7F for c in key):
        raise Problem(
            "validation",
            "Idempotency-Key must be 1-255 printable ASCII characters.",
            errors={HEADER: ["Must be 1-255 printable ASCII characters."]},
        )


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
    except ValueError:
        digest = hashlib.sha256(body).hexdigest()
    return f"{method} {path} {digest}"


class _Store:
    """Where records of one kind of principal live."""

    def __init__(self, table: str, scope_column: str | None) -> None:
        self.table = table
        self.scope_column = scope_column

    def _scope_sql(self) -> tuple[str, str]:
        if self.scope_column is None:  # tenant records: RLS supplies the tenant
            return "", ""
        return f" AND {self.scope_column} = :scope", f"{self.scope_column}, "

    def find(self, s: Session, scope: str, key: str) -> Any:
        where, _ = self._scope_sql()
        return s.execute(
            text(
                f"SELECT fingerprint, status_code, body FROM {self.table} "
                f"WHERE key = :key AND expires_at > now(){where}"
            ),
            {"key": key, "scope": scope},
        ).first()

    def save(self, s: Session, scope: str, key: str, fp: str, status: int, body: Any) -> None:
        _, col = self._scope_sql()
        conflict = f"({col}key)" if col else "(tenant_id, key)"
        s.execute(
            text(
                f"INSERT INTO {self.table} ({col}key, fingerprint, status_code, body, expires_at) "
                f"VALUES ({':scope, ' if col else ''}:key, :fp, :status, CAST(:body AS jsonb), "
                f"now() + {RETENTION}) "
                f"ON CONFLICT {conflict} DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
                "status_code = EXCLUDED.status_code, body = EXCLUDED.body, "
                "created_at = now(), expires_at = EXCLUDED.expires_at "
                f"WHERE {self.table}.expires_at <= now()"
            ),
            {"scope": scope, "key": key, "fp": fp, "status": status, "body": json.dumps(body)},
        )


TENANT_STORE = _Store("iam.idempotency_records", None)
OPERATOR_STORE = _Store("platform.operator_idempotency_records", "operator_id")


def _try_lock(s: Session, scope: str, key: str) -> bool:
    got = s.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"idem:{scope}:{key}"},
    ).scalar_one()
    return bool(got)


@overload
def idempotent(view: Callable[P, Any], /) -> Callable[P, Any]: ...


@overload
def idempotent(*, shown_once: Iterable[str]) -> Callable[[Callable[P, Any]], Callable[P, Any]]: ...


def idempotent(
    view: Callable[P, Any] | None = None, /, *, shown_once: Iterable[str] = ()
) -> Callable[P, Any] | Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Make a creating route honour Idempotency-Key: `@idempotent`.

    `@idempotent(shown_once=("key",))` names response fields holding a secret that is
    revealed only at creation: they are never stored, and a replay returns the rest.
    """
    hidden = frozenset(shown_once)

    def decorate(view: Callable[P, Any]) -> Callable[P, Any]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            return _run_once(key, hidden, lambda: view(*args, **kwargs))

        wrapper._idempotent = True  # type: ignore[attr-defined]  # read by erp.openapi
        return wrapper

    return decorate(view) if view is not None else decorate


def _run_once(key: str, hidden: frozenset[str], run: Callable[[], Any]) -> Any:
    validate_key(key)
    principal = current_principal()
    store = OPERATOR_STORE if principal.kind == "operator" else TENANT_STORE
    scope = str(principal.id if principal.kind == "operator" else principal.tenant_id)
    fp = fingerprint(request.method, request.path, request.get_data(cache=True))
    s = db.session
    if not _try_lock(s, scope, key):
        raise Problem("idempotency-in-flight", "A request with this key is still running.")
    prior = store.find(s, scope, key)
    if prior is not None:
        if prior.fingerprint != fp:
            raise Problem(
                "idempotency-mismatch",
                "This Idempotency-Key was used with a different request.",
            )
        resp = current_app.response_class(
            json.dumps(prior.body), status=prior.status_code, mimetype="application/json"
        )
        resp.headers[REPLAYED] = "true"
        return resp
    resp = current_app.make_response(run())
    if 200 <= resp.status_code < 300 and resp.is_json:
        body = resp.get_json()
        if isinstance(body, dict) and hidden:
            body = {k: v for k, v in body.items() if k not in hidden}
        store.save(s, scope, key, fp, resp.status_code, body)
    return resp


# -- expiry ----------------------------------------------------------------------------

_DISCOVER = text("SELECT * FROM app.tenants_with_expired_idempotency_records(:limit)")
_DELETE_TENANT = text("DELETE FROM iam.idempotency_records WHERE expires_at <= now()")
_DELETE_OPERATOR = text(
    "DELETE FROM platform.operator_idempotency_records WHERE expires_at <= now()"
)
#: Tenants handled per discovery round; rounds repeat until none is left.
DISCOVERY_BATCH = 500


def purge_expired() -> int:
    """RQ job (scheduled by `erp scheduler`): delete expired idempotency records.

    Discovery names the tenants that have any (ids only, DESIGN.md §3); each tenant's
    records are then deleted in a transaction pinned to that tenant, under RLS. The
    operators' records live in `platform` and are deleted as erp_ops. Safe to run twice
    or concurrently: a row is deleted once, a second run finds nothing.
    """
    db.fork_safe()
    deleted = 0
    while True:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            tenants = list(conn.execute(_DISCOVER, {"limit": DISCOVERY_BATCH}).scalars())
        for tenant in tenants:
            deleted += db.unit_of_work(lambda s: changed(s, _DELETE_TENANT), tenant=tenant)
        if len(tenants) < DISCOVERY_BATCH:
            break
    deleted += db.unit_of_work(lambda s: changed(s, _DELETE_OPERATOR), tenant=None, role="erp_ops")
    return deleted
