"""JSON text for hot paths: orjson, with the standard library for what orjson refuses.

A posting serialises its reply, its metadata and its event payload; with `json.dumps`
that was ~4% of the request's CPU (issue 15), with orjson a fifth of it. orjson
refuses integers outside 64 bits, which metadata may hold (erp.inputs allows number
literals up to 100 characters): those values go through `json.dumps`, so a body
that loads is never refused here.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (no spaces; non-ASCII characters as they are)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(value: Any) -> str:
    """`dumps_bytes` as text (an SQL parameter, a jsonb literal)."""
    return dumps_bytes(value).decode()
