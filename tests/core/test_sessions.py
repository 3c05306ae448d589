"""The API keeps no cookie session: Flask's signed-cookie session is switched off."""

from __future__ import annotations

from typing import Any

import pytest
from flask.sessions import NullSession

from erp.http import ErpFlask
from tests.conftest import TenantHandle


def test_no_response_sets_a_cookie(client: Any, tenant: TenantHandle) -> None:
    for r in (client.get("/healthz"), client.get("/api/v1/me", headers=tenant.headers)):
        assert r.status_code == 200
        assert "Set-Cookie" not in r.headers


def test_the_request_session_is_null_and_refuses_writes(app: ErpFlask) -> None:
    from flask import session

    with app.test_request_context("/healthz"):
        app.preprocess_request()
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError):
            session["x"] = 1
