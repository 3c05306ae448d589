"""Sending a shop's message to a channel's hook as a shop does (Standard Webhooks):
used by the intake tests and the isolation suite's seed (tests/rls/seeds_orders.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any


def standard_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(
    secret: str, body: bytes, msg_id: str | None = None, ts: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": standard_signature(secret, msg_id, ts, body),
        "Content-Type": "application/json",
    }


def hook(client: Any, channel_id: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/hooks/v1/channels/{channel_id}/orders", data=body, headers=headers)
