"""The orders domain's inputs and outputs as plain data (tax rates, customers, channels)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class NewTaxRate:
    code: str
    name: str
    rate_ppm: int


@dataclass
class TaxRateView:
    id: uuid.UUID
    code: str
    name: str
    rate_ppm: int
    archived: bool
    created_at: datetime


@dataclass
class CustomerView:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime


@dataclass(frozen=True)
class NewChannel:
    name: str
    kind: str
    on_shortage: str = "reject"
    location_id: uuid.UUID | None = None
    #: a shopify channel's shop secret (required); a generic channel's is made here
    signing_secret: str | None = None


@dataclass
class ChannelView:
    id: uuid.UUID
    name: str
    kind: str
    on_shortage: str
    location_id: uuid.UUID | None
    archived: bool
    created_at: datetime
    #: shown once: a generic channel's, in the creating and rotate-secret answers
    signing_secret: str | None = None
