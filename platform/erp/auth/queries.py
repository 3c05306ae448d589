"""Reads of sign-in: the member and invitation lists (cursor-paginated)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp.auth.models import Invitation, Membership
from erp.pagination import Page, paginate


def members_page(s: Session, cursor: str | None, limit: int) -> Page[Membership]:
    return paginate(
        s,
        select(Membership),
        list_name="iam.members",
        sort=Membership.created_at,
        id_col=Membership.id,
        cursor=cursor,
        limit=limit,
    )


def invitations_page(s: Session, cursor: str | None, limit: int) -> Page[Invitation]:
    return paginate(
        s,
        select(Invitation),
        list_name="iam.invitations",
        sort=Invitation.created_at,
        id_col=Invitation.id,
        cursor=cursor,
        limit=limit,
    )
