"""The sample domain's one endpoint: it runs SQL that raises the domain's SQLSTATE."""

from __future__ import annotations

from typing import Any

from erp.extensions import Blueprint
from erp.http import one_flight
from erp.idempotency import idempotent
from erp.principals import requires_scope
from tests.core.sample_domain import services

blp = Blueprint("sample", __name__, url_prefix="/api/v1/sample", description="Sample domain")


@blp.route("/freeze", methods=["POST"])
@requires_scope("ledger:write")
@blp.response(200)
def freeze() -> dict[str, Any]:
    """Raise the domain's SQLSTATE, with the field named in the error's DETAIL."""
    return services.freeze()


@blp.route("/probe", methods=["POST"])
@requires_scope("ledger:write")
@idempotent
@blp.response(200)
@one_flight
def probe() -> dict[str, Any]:
    """One call_one, the view's last step."""
    return services.probe()


@blp.route("/probe-twice", methods=["POST"])
@requires_scope("ledger:write")
@blp.response(200)
@one_flight
def probe_twice() -> dict[str, Any]:
    """Wrongly marked: a second statement after the call."""
    return services.probe_twice()


def tick() -> None:
    """A periodic job (does nothing)."""
