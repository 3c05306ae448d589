"""API key scopes: `<domain>:read` / `<domain>:write` (DESIGN.md §5).

Later domains add their names here; a key may only be granted scopes listed.
"""

from __future__ import annotations

#: `orders` covers channels, customers and tax rates too (API.md, Scopes).
DOMAINS = ("ledger", "inventory", "orders", "webhooks", "api_keys", "members")

ALL_SCOPES: frozenset[str] = frozenset(f"{d}:{a}" for d in DOMAINS for a in ("read", "write"))


def implied(scopes: frozenset[str] | set[str]) -> frozenset[str]:
    """`x:write` also grants `x:read`."""
    out = set(scopes)
    for scope in scopes:
        domain, _, action = scope.partition(":")
        if action == "write":
            out.add(f"{domain}:read")
    return frozenset(out)


def unknown(scopes: list[str] | set[str]) -> list[str]:
    return sorted(s for s in scopes if s not in ALL_SCOPES)
