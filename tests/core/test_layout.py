"""The source layout, and the runtime login's refusal to run with privileges."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from erp.cli import main
from erp.config import Settings
from erp.db import PrivilegedLoginError, assert_unprivileged, make_engine
from erp.paths import ROOT
from tests.conftest import TEST_ENCRYPTION_KEY, TenantHandle
from tests.core.conftest import AppFactory


def test_platform_is_a_source_root_not_a_package() -> None:
    # `platform` is a stdlib module: a package of that name would shadow it
    assert (ROOT / "platform" / "erp" / "__init__.py").is_file()
    assert not (ROOT / "platform" / "__init__.py").exists()
    import platform

    assert callable(platform.python_version)


def test_assert_unprivileged_refuses_a_superuser(settings: Settings, owner_url: str) -> None:
    engine = make_engine(settings, owner_url, check_privileges=False)
    try:
        with pytest.raises(PrivilegedLoginError, match="superuser"):
            assert_unprivileged(engine)
    finally:
        engine.dispose()


def test_assert_unprivileged_accepts_erp_app(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        assert_unprivileged(engine)
    finally:
        engine.dispose()


def test_an_engine_refuses_a_superuser_on_first_connect(settings: Settings, owner_url: str) -> None:
    engine = make_engine(settings, owner_url)
    try:
        for _ in range(2):  # and keeps refusing
            with pytest.raises(PrivilegedLoginError), engine.connect():
                pass
    finally:
        engine.dispose()


def test_an_app_on_a_superuser_login_serves_nothing(
    make_app: AppFactory, owner_url: str, tenant: TenantHandle
) -> None:
    app = make_app(database_url=owner_url)
    client = app.test_client()
    r = client.get("/api/v1/me", headers=tenant.headers)
    assert r.status_code == 500
    assert "superuser" not in r.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["postgres"] == "error: PrivilegedLoginError"


def test_erp_serve_refuses_a_superuser_login(
    owner_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_args: Any) -> None:
        raise AssertionError("gunicorn must not start")

    monkeypatch.setattr("erp.server.run_gunicorn", never)
    result = CliRunner().invoke(
        main,
        ["serve"],
        env={
            "DATABASE_URL": owner_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "k",
            # a domain registers encrypted columns: without keys it would refuse for that
            "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        },
    )
    assert result.exit_code == 1, result.output
    assert "superuser" in result.stderr


def test_erp_worker_refuses_a_superuser_login(owner_url: str, redis_url: str) -> None:
    result = CliRunner().invoke(
        main,
        ["worker", "--burst"],
        env={
            "DATABASE_URL": owner_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "k",
            "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        },
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, PrivilegedLoginError)
