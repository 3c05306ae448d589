"""Roles of a membership and the API scopes each grants: the one table (docs/auth.md)."""

from __future__ import annotations

from erp.scopes import ALL_SCOPES

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": ALL_SCOPES,
    "admin": ALL_SCOPES,
    "accountant": frozenset({"ledger:write", "inventory:read", "orders:read"}),
    "warehouse": frozenset({"inventory:write", "orders:read"}),
    "sales": frozenset({"orders:write", "inventory:read"}),
    "viewer": frozenset({"ledger:read", "inventory:read", "orders:read", "webhooks:read"}),
}
ROLES: tuple[str, ...] = tuple(ROLE_SCOPES)


def scopes_for(role: str) -> frozenset[str]:
    """The scopes of `role`; an unknown role (never stored: a CHECK refuses it) has none."""
    return ROLE_SCOPES.get(role, frozenset())
