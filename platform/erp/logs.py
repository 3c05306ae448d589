"""Structured JSON logs: one object per line with request id, tenant and principal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from erp.context import current_actor, current_request_id
from erp.db import current_tenant

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        tenant = current_tenant.get()
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": current_request_id.get(),
            "tenant_id": str(tenant) if tenant else None,
            "principal": current_actor.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_erp", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._erp = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
