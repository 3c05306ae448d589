"""Orders: the rules of tax rates, customers and sales channels (API.md, Orders).

Placement, the steps and the intake live beside this module (placement*.py,
mappers.py, signatures.py) and call these services: `tax_rates_by_code` for pricing,
`customer_for` to find or make an order's customer, `channel_secrets` to verify a
shop's signature. Nothing here commits.
"""

from __future__ import annotations

import base64
import secrets as _secrets
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from erp.audit import tenant_event
from erp.errors import Problem, field_problem
from erp.inventory import services as inventory
from erp.orders.commands import (
    ChannelView,
    CustomerView,
    NewChannel,
    NewTaxRate,
    TaxRateView,
)
from erp.orders.models import Channel, Customer, TaxRate
from erp.secretbox import current_box

#: A generic channel's old secret stays valid this long after a rotation (API.md).
ROTATION_OVERLAP = timedelta(hours=24)
GENERIC_PREFIX = "whsec_"


# -- tax rates ---------------------------------------------------------------------------


def tax_rate_view(r: TaxRate) -> TaxRateView:
    return TaxRateView(r.id, r.code, r.name, r.rate_ppm, r.archived, r.created_at)


def _code_taken(code: str) -> Problem:
    return Problem(
        "conflict", f"A tax rate with code {code!r} exists.", errors={"code": ["Already used."]}
    )


def create_tax_rate(s: Session, cmd: NewTaxRate) -> TaxRateView:
    if s.scalar(select(TaxRate.id).where(TaxRate.code == cmd.code)) is not None:
        raise _code_taken(cmd.code)
    rate = TaxRate(code=cmd.code, name=cmd.name, rate_ppm=cmd.rate_ppm)
    s.add(rate)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:  # a concurrent create of the same code
        raise _code_taken(cmd.code) from exc
    s.refresh(rate, ["created_at"])
    return tax_rate_view(rate)


def _tax_rate(s: Session, rate_id: uuid.UUID, *, lock: bool = False) -> TaxRate:
    stmt = select(TaxRate).where(TaxRate.id == rate_id)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    found = s.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise Problem("not-found")
    return found


def get_tax_rate(s: Session, rate_id: uuid.UUID) -> TaxRateView:
    return tax_rate_view(_tax_rate(s, rate_id))


def update_tax_rate(s: Session, rate_id: uuid.UUID, changes: dict[str, Any]) -> TaxRateView:
    """`name` and `archived` only: a rate never changes (a new rate is a new code)."""
    rate = _tax_rate(s, rate_id, lock=True)
    for name in ("name", "archived"):
        if name in changes:
            setattr(rate, name, changes[name])
    s.flush()
    return tax_rate_view(rate)


def tax_rates_by_code(s: Session, codes: Iterable[str]) -> dict[str, TaxRateView]:
    """The tenant's rates among `codes` (archived ones included: the caller refuses them
    for new use), by code; a code absent from the answer is unknown."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = s.scalars(select(TaxRate).where(TaxRate.code.in_(wanted)))
    return {r.code: tax_rate_view(r) for r in rows}


# -- customers ---------------------------------------------------------------------------


def customer_view(c: Customer) -> CustomerView:
    return CustomerView(c.id, c.name, c.email, c.created_at)


_INSERT_CUSTOMER = text(
    """INSERT INTO orders.customers (id, name, email) VALUES (:id, :name, :email)
       ON CONFLICT (tenant_id, lower(email)) DO NOTHING
       RETURNING id, name, email, created_at"""
)
_CUSTOMER_BY_EMAIL = text(
    "SELECT id, name, email, created_at FROM orders.customers WHERE lower(email) = lower(:email)"
)


def customer_for(s: Session, name: str, email: str) -> CustomerView:
    """The customer with this email (case-insensitive), made with `name` if there is
    none; an existing customer keeps its name. Race-safe: of two concurrent orders for
    a new email one inserts, the other's ON CONFLICT waits for it and then reads it (a
    new statement sees the committed row under READ COMMITTED)."""
    row = s.execute(_INSERT_CUSTOMER, {"id": uuid.uuid4(), "name": name, "email": email}).first()
    if row is None:
        row = s.execute(_CUSTOMER_BY_EMAIL, {"email": email}).one()
    return CustomerView(row.id, row.name, row.email, row.created_at)


def get_customer(s: Session, customer_id: uuid.UUID) -> CustomerView:
    found = s.get(Customer, customer_id)
    if found is None:
        raise Problem("not-found")
    return customer_view(found)


# -- channels ----------------------------------------------------------------------------


def new_generic_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (API.md, Channels; Standard Webhooks)."""
    return GENERIC_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def channel_view(c: Channel, signing_secret: str | None = None) -> ChannelView:
    return ChannelView(
        id=c.id,
        name=c.name,
        kind=c.kind,
        on_shortage=c.on_shortage,
        location_id=c.location_id,
        archived=c.archived,
        created_at=c.created_at,
        signing_secret=signing_secret,
    )


def _check_location(s: Session, location_id: uuid.UUID | None) -> None:
    if location_id is None:
        return
    try:
        location = inventory.get_location(s, location_id)
    except Problem:
        raise field_problem("validation", "location_id", "Unknown location.") from None
    if location.archived:
        raise field_problem("validation", "location_id", "The location is archived.")


def create_channel(s: Session, cmd: NewChannel) -> ChannelView:
    """A generic channel's secret is made here and returned once; a shopify channel
    takes the shop's secret and never shows it."""
    if cmd.kind == "shopify":
        if not cmd.signing_secret:
            raise field_problem(
                "validation", "signing_secret", "Required for a shopify channel: the shop's secret."
            )
        secret, shown = cmd.signing_secret, None
    else:
        if cmd.signing_secret is not None:
            raise field_problem(
                "validation", "signing_secret", "A generic channel's secret is made for it."
            )
        secret = shown = new_generic_secret()
    _check_location(s, cmd.location_id)
    channel = Channel(
        id=uuid.uuid4(),
        name=cmd.name,
        kind=cmd.kind,
        on_shortage=cmd.on_shortage,
        location_id=cmd.location_id,
        secret=current_box().encrypt(secret),
    )
    s.add(channel)
    s.flush()
    s.refresh(channel, ["created_at"])
    tenant_event(s, "orders.channel.created", "channel", channel.id)
    return channel_view(channel, shown)


def get_channel(s: Session, channel_id: uuid.UUID, *, lock: bool = False) -> Channel:
    """The channel (archived too); another tenant's or none: 404."""
    stmt = select(Channel).where(Channel.id == channel_id)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    found = s.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise Problem("not-found")
    return found


def update_channel(s: Session, channel_id: uuid.UUID, changes: dict[str, Any]) -> ChannelView:
    channel = get_channel(s, channel_id, lock=True)
    if "signing_secret" in changes:
        if channel.kind != "shopify":
            raise field_problem(
                "validation",
                "signing_secret",
                "Only a shopify channel's secret is set; rotate a generic channel's.",
            )
        channel.secret = current_box().encrypt(changes["signing_secret"])
    if "location_id" in changes:
        _check_location(s, changes["location_id"])
        channel.location_id = changes["location_id"]
    for name in ("name", "on_shortage", "archived"):
        if name in changes:
            setattr(channel, name, changes[name])
    channel.updated_at = datetime.now(UTC)
    s.flush()
    tenant_event(s, "orders.channel.updated", "channel", channel.id, fields=sorted(changes))
    return channel_view(channel)


def rotate_secret(s: Session, channel_id: uuid.UUID) -> ChannelView:
    """A new secret for a generic channel; the old one is accepted for 24 hours more."""
    channel = get_channel(s, channel_id, lock=True)
    if channel.kind != "generic":
        raise Problem(
            "conflict",
            f"A {channel.kind} channel's secret is the shop's: set it with PATCH signing_secret.",
        )
    secret = new_generic_secret()
    channel.previous_secret = channel.secret
    channel.previous_secret_expires_at = datetime.now(UTC) + ROTATION_OVERLAP
    channel.secret = current_box().encrypt(secret)
    channel.updated_at = datetime.now(UTC)
    s.flush()
    tenant_event(s, "orders.channel.secret_rotated", "channel", channel.id)
    return channel_view(channel, secret)


def channel_secrets(channel: Channel, now: datetime) -> list[str]:
    """The secrets a message to `channel` may be signed with at `now`: the current one,
    and the previous one while the rotation overlap lasts. Generic: `whsec_...` (the
    key is the base64 part); shopify: the shop's secret as given."""
    box = current_box()
    found = [box.decrypt(channel.secret)]
    expires = channel.previous_secret_expires_at
    if channel.previous_secret is not None and expires is not None and expires > now:
        found.append(box.decrypt(channel.previous_secret))
    return found
