"""Who is calling: the principal that authentication resolved for this request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Literal, ParamSpec, TypeVar
from uuid import UUID

from flask import g

from erp.errors import Problem
from erp.scopes import implied

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TenantRef:
    id: UUID
    slug: str
    name: str


@dataclass(frozen=True)
class Principal:
    kind: Literal["api_key", "operator", "user"]
    id: UUID
    label: str
    tenant: TenantRef | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def tenant_id(self) -> UUID | None:
        return self.tenant.id if self.tenant else None

    def has_scope(self, scope: str) -> bool:
        return scope in implied(self.scopes)


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise Problem("unauthorized", "Authentication is required.")
    return principal


def requires_scope(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (403 forbidden) a tenant principal that lacks `scope`."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = current_principal()
            if principal.tenant is None or not principal.has_scope(scope):
                raise Problem("forbidden", f"This credential lacks the scope {scope}.")
            return view(*args, **kwargs)

        wrapper._required_scope = scope  # type: ignore[attr-defined]  # read by erp.openapi
        return wrapper

    return decorate


def requires_operator(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_principal().kind != "operator":
            raise Problem("forbidden", "Operator credentials are required.")
        return view(*args, **kwargs)

    return wrapper
