"""The demo tenant's owner for `make run`'s development sign-in (/auth/dev-login)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from erp.auth import services

DEMO_EMAIL = "owner@demo.example"


def seed(s: Session) -> None:
    identity = services.sign_in_identity(
        "urn:erp:dev-sign-in", DEMO_EMAIL, DEMO_EMAIL, "Owner", session=s
    )
    services.add_member(s, identity, DEMO_EMAIL, "Owner", "owner")
