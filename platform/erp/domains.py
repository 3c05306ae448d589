"""The domains the app serves, in one list: each adds its blueprints and template sections."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def register_domains(api: Any) -> None:
    from erp.tenancy import routes as tenancy_routes

    api.register_blueprint(tenancy_routes.ops)
    api.register_blueprint(tenancy_routes.tenant_api)


def seed_demo(s: Session) -> None:
    """Sample data for the demo tenant of `make run` (inside that tenant's transaction)."""
