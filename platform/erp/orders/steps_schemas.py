"""The shapes of an order's steps (API.md, Orders: Steps): cancel, fulfilments,
payments, returns, and their lists."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import FastLoad

MAX_LINES = 500


class CancelIn(FastLoad):
    reason = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=500)
    )
