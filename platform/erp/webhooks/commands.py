"""The webhooks domain's inputs and outputs as plain data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: The one type no endpoint subscribes to: `POST .../test` sends it to one endpoint.
TEST_EVENT = "webhook.test"
#: Emitted when the system disables an endpoint (410, or failing for 5 days).
DISABLED_EVENT = "webhook_endpoint.disabled"
#: Retries after the first attempt (API.md, ±10 % jitter); then the message is failed.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)


@dataclass(frozen=True)
class NewEndpoint:
    url: str
    event_types: list[str] | None = None
    description: str | None = None


@dataclass
class EndpointView:
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str] | None
    disabled: bool
    disabled_reason: str | None
    created_at: datetime
    #: shown once: in the creating answer and rotate-secret's
    secret: str | None = None

    def event_data(self) -> dict[str, Any]:
        """The endpoint as webhook_endpoint.disabled carries it (no secret)."""
        return {
            "id": str(self.id),
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }
