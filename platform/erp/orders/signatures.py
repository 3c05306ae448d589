"""Inbound shop signatures (API.md, Sales channels): Standard Webhooks for `generic`
channels, Shopify's HMAC for `shopify` ones.

Pure functions: bytes and headers in, the verified message id (or None) out. Anything
malformed is None, never an exception, because every caller answers it the same way
(401, nothing stored) and an exception would be a 500 a sender could provoke.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

#: Standard Webhooks' replay window: a timestamp further than this from now, either
#: side, is refused (API.md: "more than 5 minutes from now").
TOLERANCE = timedelta(minutes=5)

PREFIX = "whsec_"
#: A message id is stored (inbound_messages.webhook_id) and echoed: bounded and printable.
MAX_ID_LENGTH = 255
#: A sender signs with its current secret and, around a rotation, the previous one; a
#: header of more candidates than this is not a real sender's.
MAX_SIGNATURES = 16
_MAX_SIGNATURE_HEADER = MAX_SIGNATURES * 128

_DIGEST_SIZE = hashlib.sha256().digest_size
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value, its name matched case-insensitively (Werkzeug's headers do
    that themselves; a plain dict from a job or a test does not)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if key.lower() == wanted:
                value = candidate
                break
    return value if isinstance(value, str) else None


def _message_id(value: str | None) -> str | None:
    if value is None or len(value) > MAX_ID_LENGTH or not _PRINTABLE.fullmatch(value):
        return None
    return value


def _b64(value: str) -> bytes | None:
    """Strict standard base64 (padding optional), else None."""
    if not value.isascii():
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _digest(value: str) -> bytes | None:
    """A base64 HMAC-SHA256 as sent, decoded; None unless it is exactly 32 bytes."""
    if len(value) > 2 * _DIGEST_SIZE:
        return None
    raw = _b64(value)
    return raw if raw is not None and len(raw) == _DIGEST_SIZE else None


def _standard_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_` secret: its base64 part, decoded. A secret without
    the prefix is taken as that base64 part, as the reference libraries do."""
    raw = _b64(secret.removeprefix(PREFIX))
    return raw or None


def _standard_candidates(header: str) -> list[bytes] | None:
    """The `v1` signatures of a `webhook-signature` header; other versions are skipped
    (the spec allows them), a malformed `v1` entry is ignored like a wrong one."""
    if len(header) > _MAX_SIGNATURE_HEADER or not header.isascii():
        return None
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        return None
    found = []
    for entry in entries:
        version, sep, value = entry.partition(",")
        if sep and version == "v1" and (digest := _digest(value)) is not None:
            found.append(digest)
    return found


def verify_standard(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now: datetime
) -> str | None:
    """The `webhook-id` of a message signed per Standard Webhooks with one of `secrets`
    (any one of the space-separated `v1,<base64>` signatures may match any secret), whose
    `webhook-timestamp` is at most TOLERANCE from `now` (an aware datetime); else None."""
    msg_id = _message_id(_header(headers, "webhook-id"))
    timestamp = _header(headers, "webhook-timestamp")
    header = _header(headers, "webhook-signature")
    if msg_id is None or timestamp is None or header is None:
        return None
    if not _TIMESTAMP.fullmatch(timestamp):
        return None
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE.total_seconds():
        return None
    candidates = _standard_candidates(header)
    if not candidates:
        return None
    signed = f"{msg_id}.{timestamp}.".encode("ascii") + body
    valid = False
    for secret in secrets:
        key = _standard_key(secret)
        if key is None:
            continue
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        for candidate in candidates:
            # No early exit: the time taken says nothing about which one matched.
            valid |= hmac.compare_digest(expected, candidate)
    return msg_id if valid else None


def verify_shopify(secret: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """The `X-Shopify-Webhook-Id` of a message whose `X-Shopify-Hmac-Sha256` is the
    base64 HMAC-SHA256 of the raw body keyed by the secret's UTF-8 bytes; else None.
    Shopify sends no timestamp to bound a replay: the id deduplicates instead."""
    if not secret:
        return None
    msg_id = _message_id(_header(headers, "X-Shopify-Webhook-Id"))
    sent = _header(headers, "X-Shopify-Hmac-Sha256")
    if msg_id is None or sent is None:
        return None
    candidate = _digest(sent.strip())
    if candidate is None:
        return None
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return msg_id if hmac.compare_digest(expected, candidate) else None
