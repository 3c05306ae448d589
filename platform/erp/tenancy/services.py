"""Tenants, operators and API keys: the rules. No Flask here, and nothing commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from erp import audit, credentials
from erp.context import current_actor
from erp.db import acting_in_tenant
from erp.errors import Problem
from erp.registry import registry
from erp.scopes import implied, unknown
from erp.templates import TemplateError, load_template
from erp.tenancy.keycache import bump_after_commit
from erp.tenancy.models import ApiKey, Operator, Tenant
from erp.tenancy.queries import tenants_query

# -- tenants ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionTenant:
    slug: str
    name: str
    base_currency: str
    template: str = "default"


def _same_request(t: Tenant, cmd: ProvisionTenant) -> bool:
    return (t.name, t.base_currency, t.template) == (cmd.name, cmd.base_currency, cmd.template)


def provision_tenant(s: Session, cmd: ProvisionTenant) -> tuple[Tenant, bool]:
    """Create a tenant from a template; the same slug and body again returns it.

    Runs as erp_ops; the template's tenant-side rows are written as erp_app
    with the new tenant's GUC, in the same transaction.
    """
    try:
        template = load_template(cmd.template)
    except TemplateError as exc:
        raise Problem("validation", str(exc), errors={"template": [str(exc)]}) from exc
    new_id = uuid.uuid4()
    inserted = s.execute(
        insert(Tenant)
        .values(
            id=new_id,
            slug=cmd.slug,
            name=cmd.name,
            base_currency=cmd.base_currency,
            template=cmd.template,
        )
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(Tenant.id)
    ).scalar_one_or_none()
    tenant = s.scalars(
        select(Tenant).where(Tenant.slug == cmd.slug).execution_options(populate_existing=True)
    ).one()
    if inserted is None:
        if not _same_request(tenant, cmd):
            raise Problem(
                "conflict", f"A tenant with slug {cmd.slug!r} exists with other settings."
            )
        return tenant, False
    audit.operator_event(s, "tenant.provisioned", tenant.id, tenant.slug, template=cmd.template)
    with acting_in_tenant(s, tenant.id):
        template.apply(s, cmd.base_currency)
        audit.tenant_event(s, "tenant.provisioned", "tenant", tenant.id, template=cmd.template)
    return tenant, True


def list_tenants(s: Session, status: str | None = None) -> list[Tenant]:
    return list(
        s.scalars(tenants_query(status).order_by(Tenant.created_at.desc(), Tenant.id.desc()))
    )


def get_tenant(s: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        raise Problem("not-found")
    return tenant


def read_tenant(s: Session, tenant_id: uuid.UUID) -> tuple[Tenant, dict[str, int]]:
    """An operator looks at one tenant: status and usage counts, audited as `tenant.read`."""
    tenant = get_tenant(s, tenant_id)
    usage = usage_counts(s, tenant_id)
    audit.operator_event(s, "tenant.read", tenant.id, tenant.slug)
    return tenant, usage


def tenants_listed(s: Session, status: str | None, shown: int) -> None:
    """Audit one page of the tenant list as one `tenant.listed` event naming no tenant.

    A list shows slugs, names and statuses, never contents: one event per call (its
    filter and how many tenants it showed) says who looked, without an event per row.
    """
    audit.operator_event(s, "tenant.listed", None, None, status=status, shown=shown)


def usage_counts(s: Session, tenant_id: uuid.UUID) -> dict[str, int]:
    """Row counts of one tenant: how much it uses, never what it holds."""
    with acting_in_tenant(s, tenant_id):
        return {name: int(s.execute(text(q)).scalar_one()) for name, q in registry().usage.items()}


def _transition(
    s: Session,
    tenant_id: uuid.UUID,
    allowed_from: Iterable[str],
    action: str,
    change: Callable[[Tenant], None],
    **details: Any,
) -> Tenant:
    tenant = s.scalars(select(Tenant).where(Tenant.id == tenant_id).with_for_update()).one_or_none()
    if tenant is None:
        raise Problem("not-found")
    if tenant.status not in allowed_from:
        raise Problem("conflict", f"The tenant is {tenant.status}; cannot {action.split('.')[-1]}.")
    change(tenant)
    tenant.updated_at = datetime.now(UTC)
    s.flush()
    bump_after_commit(s)  # cached API keys carry the tenant's status
    audit.operator_event(s, action, tenant.id, tenant.slug, **details)
    return tenant


def suspend_tenant(s: Session, tenant_id: uuid.UUID, reason: str) -> Tenant:
    def change(t: Tenant) -> None:
        t.status, t.status_reason = "suspended", reason

    return _transition(s, tenant_id, ("active",), "tenant.suspended", change, reason=reason)


def reactivate_tenant(s: Session, tenant_id: uuid.UUID) -> Tenant:
    def change(t: Tenant) -> None:
        t.status, t.status_reason = "active", None

    return _transition(s, tenant_id, ("suspended",), "tenant.reactivated", change)


def delete_tenant(s: Session, tenant_id: uuid.UUID, grace: timedelta) -> Tenant:
    """Schedule the purge; the tenant's credentials stop working now."""
    purge_at = datetime.now(UTC) + grace

    def change(t: Tenant) -> None:
        t.status_before_delete = t.status
        t.status, t.delete_after = "deleting", purge_at

    return _transition(
        s,
        tenant_id,
        ("active", "suspended"),
        "tenant.deleted",
        change,
        purge_after=purge_at.isoformat(),
    )


def restore_tenant(s: Session, tenant_id: uuid.UUID) -> Tenant:
    def change(t: Tenant) -> None:
        if t.delete_after is not None and t.delete_after <= datetime.now(UTC):
            raise Problem("conflict", "The grace period is over; the tenant is being purged.")
        t.status = t.status_before_delete or "active"
        t.status_before_delete = None
        t.delete_after = None

    return _transition(s, tenant_id, ("deleting",), "tenant.restored", change)


# -- operators -------------------------------------------------------------------


def create_operator(s: Session, email: str) -> tuple[Operator, str]:
    """A new operator and its token (returned once; only the hash is kept)."""
    public_id, secret = credentials.new_public_id(), credentials.new_secret()
    op = Operator(email=email, public_id=public_id, token_hash=credentials.hash_secret(secret))
    s.add(op)
    s.flush()
    return op, credentials.format_operator_token(public_id, secret)


def list_operators(s: Session) -> list[Operator]:
    """Every operator, revoked ones included (their audit trail names them), oldest first."""
    return list(s.scalars(select(Operator).order_by(Operator.created_at, Operator.id)))


# -- API keys --------------------------------------------------------------------


@dataclass(frozen=True)
class CreateApiKey:
    name: str
    scopes: list[str]
    expires_at: datetime | None = None


def create_api_key(
    s: Session, cmd: CreateApiKey, env: str, grantor_scopes: frozenset[str] | None
) -> tuple[ApiKey, str]:
    """Issue a key in the current tenant. `grantor_scopes` None: an operator issues it."""
    if bad := unknown(cmd.scopes):
        raise Problem(
            "validation", "Unknown scopes.", errors={"scopes": [f"Unknown: {', '.join(bad)}"]}
        )
    if grantor_scopes is not None and (excess := set(cmd.scopes) - implied(grantor_scopes)):
        raise Problem(
            "forbidden",
            "A key may grant only scopes its creator holds.",
            errors={"scopes": [f"Not held: {', '.join(sorted(excess))}"]},
        )
    if cmd.expires_at is not None and cmd.expires_at <= datetime.now(UTC):
        raise Problem(
            "validation",
            "expires_at is in the past.",
            errors={"expires_at": ["Must be in the future."]},
        )
    public_id, secret = credentials.new_public_id(), credentials.new_secret()
    key = ApiKey(
        name=cmd.name,
        env=env,
        public_id=public_id,
        secret_hash=credentials.hash_secret(secret),
        scopes=sorted(set(cmd.scopes)),
        created_by=current_actor.get(),
        expires_at=cmd.expires_at,
    )
    s.add(key)
    s.flush()
    audit.tenant_event(s, "api_key.created", "api_key", key.id, name=key.name, scopes=key.scopes)
    return key, credentials.format_api_key(env, public_id, secret)


def issue_tenant_key(
    s: Session, tenant_id: uuid.UUID, cmd: CreateApiKey, env: str
) -> tuple[ApiKey, str]:
    """An operator (or the CLI) issues a key in an active tenant; audited on both sides."""
    tenant = get_tenant(s, tenant_id)
    if tenant.status != "active":
        raise Problem("conflict", f"The tenant is {tenant.status}.")
    with acting_in_tenant(s, tenant_id):
        key, raw = create_api_key(s, cmd, env, grantor_scopes=None)
    audit.operator_event(
        s, "api_key.issued", tenant.id, tenant.slug, key_id=str(key.id), scopes=key.scopes
    )
    return key, raw


def revoke_tenant_key(s: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """An operator (or the CLI) revokes a key of a tenant; audited on both sides."""
    tenant = get_tenant(s, tenant_id)
    with acting_in_tenant(s, tenant_id):
        key = revoke_api_key(s, key_id)
    audit.operator_event(s, "api_key.revoked", tenant.id, tenant.slug, key_id=str(key.id))
    return key


def revoke_api_key(s: Session, key_id: uuid.UUID) -> ApiKey:
    key = s.scalars(select(ApiKey).where(ApiKey.id == key_id).with_for_update()).one_or_none()
    if key is None:
        raise Problem("not-found")
    if key.revoked_at is None:
        key.revoked_at = s.execute(select(func.now())).scalar_one()
        s.flush()
        bump_after_commit(s)
        audit.tenant_event(s, "api_key.revoked", "api_key", key.id, name=key.name)
    return key
