"""Resolve the caller of a request into a Principal, before the request's transaction.

API keys are found through `app.lookup_api_key` (the one SECURITY DEFINER
function), before any tenant is known; the tenant then comes from the key row
alone. Nothing the client sends can name another tenant.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp import credentials
from erp.db import autocommit_row
from erp.errors import Problem
from erp.extensions import db
from erp.principals import Principal, TenantRef
from erp.tenancy.keycache import key_cache
from erp.tenancy.models import Operator

LAST_USED_GRANULARITY = timedelta(minutes=1)
_PUBLIC_PREFIXES = ("/api/v1/openapi.json",)


def _unauthorized(detail: str = "A valid bearer credential is required.") -> Problem:
    return Problem("unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="erp"'})


def authenticate_request(path: str, authorization: str | None) -> Principal | None:
    if path.startswith("/ops/"):
        return authenticate_operator(credentials.bearer(authorization))
    if path.startswith("/api/v1/") and not path.startswith(_PUBLIC_PREFIXES):
        return authenticate_api_key(credentials.bearer(authorization))
    return None


def authenticate_api_key(raw: str | None) -> Principal:
    cred = credentials.parse_api_key(raw) if raw else None
    if cred is None:
        raise _unauthorized()
    return _resolve_api_key(cred)


_LOOKUP = "SELECT * FROM app.lookup_api_key(%(public_id)s, %(secret_hash)s)"


def _lookup(cred: credentials.Credential) -> Any:
    """One statement, one round trip: autocommit, no tenant (the definer needs none)."""
    return autocommit_row(
        db.engine, _LOOKUP, {"public_id": cred.public_id, "secret_hash": cred.secret_hash}
    )


def _resolve_api_key(cred: credentials.Credential) -> Principal:
    cache = key_cache()
    epoch = cache.current_epoch() if cache is not None else None
    ident = (cred.public_id, cred.secret_hash)
    entry = cache.get(ident, epoch) if cache is not None and epoch is not None else None
    if entry is None:
        row = _lookup(cred)  # read after the epoch: a change committed since is caught
        touched = row is not None and _recently_used(row.last_used_at)
        if cache is not None and epoch is not None and row is not None:
            entry = cache.put(ident, row, epoch, touched)
    else:
        row = entry.row
        touched = time.monotonic() - entry.touched_at < LAST_USED_GRANULARITY.total_seconds()
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None:
        raise _unauthorized("The API key is not valid.")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthorized("The API key has expired.")
    if row.tenant_status != "active":  # suspended, or deleted and awaiting its purge
        raise Problem(
            "tenant-suspended", f"The tenant is {row.tenant_status}; its credentials do not work."
        )
    if not touched:
        db.unit_of_work(lambda s: _touch(s, row.key_id), tenant=row.tenant_id)
        if entry is not None:
            entry.touched_at = time.monotonic()
    if entry is not None and entry.principal is not None:
        return cast(Principal, entry.principal)
    principal = Principal(
        kind="api_key",
        id=row.key_id,
        label=row.name,
        tenant=TenantRef(row.tenant_id, row.tenant_slug, row.tenant_name),
        scopes=frozenset(row.scopes),
    )
    if entry is not None:
        entry.principal = principal
    return principal


def _recently_used(last_used_at: datetime | None) -> bool:
    return last_used_at is not None and datetime.now(UTC) - last_used_at < LAST_USED_GRANULARITY


def _touch(s: Session, key_id: UUID) -> None:
    """Write last_used_at at most once a minute per key (the WHERE makes racers no-ops)."""
    s.execute(
        text(
            "UPDATE iam.api_keys SET last_used_at = now() WHERE id = :id "
            "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        ),
        {"id": key_id},
    )


def authenticate_operator(raw: str | None) -> Principal:
    cred = credentials.parse_operator_token(raw) if raw else None
    if cred is None:
        raise _unauthorized()
    op = db.unit_of_work(
        lambda s: s.scalars(
            select(Operator).where(
                Operator.public_id == cred.public_id,
                Operator.token_hash == cred.secret_hash,
                Operator.revoked_at.is_(None),
            )
        ).one_or_none(),
        tenant=None,
        role="erp_ops",
    )
    if op is None:
        raise _unauthorized("The operator token is not valid.")
    return Principal(kind="operator", id=op.id, label=op.email)
