"""The domains the app serves, in one list: blueprints, template sections, usage counts
and demo data. A new domain adds itself here and nowhere else in the core."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def register_sections() -> None:
    """Template sections each domain provisions (idempotent)."""
    from erp.ledger import provisioning as ledger_provisioning

    ledger_provisioning.register()


def register_domains(api: Any) -> None:
    from erp.ledger import routes as ledger_routes
    from erp.tenancy import routes as tenancy_routes
    from erp.tenancy.services import register_usage

    register_sections()
    register_usage("ledger_accounts", "SELECT count(*) FROM ledger.accounts")
    register_usage("ledger_transactions", "SELECT count(*) FROM ledger.transactions")
    api.register_blueprint(tenancy_routes.ops)
    api.register_blueprint(tenancy_routes.tenant_api)
    api.register_blueprint(ledger_routes.blp)


def seed_demo(s: Session) -> None:
    """Sample data for the demo tenant of `make run` (inside that tenant's transaction)."""
    from erp.ledger.demo import seed

    seed(s)
