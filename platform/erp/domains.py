"""The domains this platform serves, in the order they register. Nothing else.

Each is a package exposing `register(r: erp.registry.Registry)` in its `__init__.py`.
Adding a domain is one line here, one package, one migration and its policy file.
"""

DOMAINS: tuple[str, ...] = (
    "erp.auth",  # first: its session authenticator runs before the API-key one
    "erp.tenancy",
    "erp.webhooks",
    "erp.ledger",
    "erp.inventory",
    "erp.orders",
)
