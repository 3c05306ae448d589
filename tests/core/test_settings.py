"""Settings that cannot half-work: every malformed variable is named at start-up, and
the processes that sign cursors refuse to start without a shared SECRET_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from erp import create_app
from erp.cli import main
from erp.config import UNSET_SIGNING_KEY, Settings, SettingsError
from erp.devserver import _save, _state

INTEGERS = (
    "MAX_CONTENT_LENGTH",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_LOCK_TIMEOUT_MS",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "TENANT_PURGE_GRACE_DAYS",
)
BOOLEANS = ("DB_POOL_PRE_PING", "LOG_JSON")


def _error(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return str(caught.value)


@pytest.mark.parametrize("name", INTEGERS)
@pytest.mark.parametrize("bad", ["abc", "1.5", "10s", "0x10"])
def test_a_malformed_integer_names_the_variable(name: str, bad: str) -> None:
    assert _error({name: bad}) == f"{name}: expected an integer, got {bad!r}"


def test_integers_are_read_and_ranges_checked() -> None:
    settings = Settings.from_env({"DB_POOL_SIZE": " 3 ", "DB_LOCK_TIMEOUT_MS": "1234"})
    assert (settings.db_pool_size, settings.db_lock_timeout_ms) == (3, 1234)
    assert _error({"DB_POOL_SIZE": "0"}) == "DB_POOL_SIZE: expected an integer >= 1, got '0'"
    assert "expected an integer >= 0" in _error({"DB_STATEMENT_TIMEOUT_MS": "-5"})


@pytest.mark.parametrize("name", BOOLEANS)
def test_booleans_accept_only_the_documented_words(name: str) -> None:
    field = name.lower()
    for raw in ("true", "TRUE", "1", "yes", "on", " On "):
        assert getattr(Settings.from_env({name: raw}), field) is True, raw
    for raw in ("false", "False", "0", "no", "off"):
        assert getattr(Settings.from_env({name: raw}), field) is False, raw
    for bad in ("maybe", "2", "enabled", "y", "t"):
        assert _error({name: bad}) == (
            f"{name}: expected true or false (1/0, yes/no, on/off), got {bad!r}"
        )


def test_api_key_env_accepts_only_live_or_test() -> None:
    assert Settings.from_env({"API_KEY_ENV": "live"}).api_key_env == "live"
    assert Settings.from_env({"API_KEY_ENV": "test"}).api_key_env == "test"
    for bad in ("prod", "LIVE", "staging", "live_"):
        assert (
            _error({"API_KEY_ENV": bad}) == f"API_KEY_ENV: expected one of live, test, got {bad!r}"
        )


def test_log_level_and_prepare_threshold() -> None:
    assert Settings.from_env({"LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert _error({"LOG_LEVEL": "loud"}).startswith("LOG_LEVEL: expected one of DEBUG, INFO")
    assert Settings.from_env({"DB_PREPARE_THRESHOLD": "none"}).db_prepare_threshold is None
    assert Settings.from_env({"DB_PREPARE_THRESHOLD": "0"}).db_prepare_threshold == 0
    assert _error({"DB_PREPARE_THRESHOLD": "never"}) == (
        "DB_PREPARE_THRESHOLD: expected an integer or 'none', got 'never'"
    )


def test_a_url_of_the_wrong_kind_is_named_without_echoing_its_password() -> None:
    message = _error({"DATABASE_URL": "mysql://root:hunter2@db/erp"})
    assert message.startswith("DATABASE_URL: expected a URL starting with postgresql://")
    assert "hunter2" not in message
    assert "hunter2" not in _error({"REDIS_URL": "hunter2"})
    assert "MIGRATION_DATABASE_URL" in _error({"MIGRATION_DATABASE_URL": "localhost/erp"})
    ok = Settings.from_env({"REDIS_URL": "unix:///tmp/r.sock", "DATABASE_URL": "postgres://x/y"})
    assert ok.redis_url == "unix:///tmp/r.sock"


def test_every_malformed_variable_is_listed_one_per_line() -> None:
    lines = _error({"DB_POOL_SIZE": "abc", "LOG_JSON": "maybe", "API_KEY_ENV": "x"}).splitlines()
    assert [line.split(":")[0] for line in lines] == ["API_KEY_ENV", "DB_POOL_SIZE", "LOG_JSON"]


def test_empty_values_mean_the_default() -> None:
    env = dict.fromkeys((*INTEGERS, *BOOLEANS, "API_KEY_ENV", "DATABASE_URL", "SECRET_KEY"), "")
    assert Settings.from_env(env) == Settings()


def test_an_app_refuses_to_be_built_without_a_secret_key() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        create_app(Settings(secret_key=""))


# -- the command line ------------------------------------------------------------------

NO_SECRET: dict[str, str | None] = {"SECRET_KEY": None}


def _never(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("must not start")


def _one_line_error(result: Any, expected: str) -> None:
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.splitlines() == [f"Error: {expected}"]
    assert "Traceback" not in result.output


def test_serve_refuses_to_start_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("erp.server.run_gunicorn", _never)
    monkeypatch.setattr("erp.db.make_engine", _never)  # refused before touching the database
    result = CliRunner().invoke(main, ["serve"], env=NO_SECRET)
    _one_line_error(result, UNSET_SIGNING_KEY)


def test_worker_refuses_to_start_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("erp.worker.run_worker", _never)
    result = CliRunner().invoke(main, ["worker", "--burst"], env=NO_SECRET)
    _one_line_error(result, UNSET_SIGNING_KEY)


@pytest.mark.parametrize("command", [["serve"], ["worker", "--burst"]])
def test_a_real_process_refuses_in_one_line(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "erp.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"Error: {UNSET_SIGNING_KEY}"]


def test_a_malformed_variable_stops_any_command_in_one_line() -> None:
    env = {"SECRET_KEY": "k", "DB_POOL_SIZE": "abc"}
    for command in (["tenants", "list"], ["migrate"], ["serve"], ["worker"]):
        result = CliRunner().invoke(main, command, env=env)
        _one_line_error(result, "DB_POOL_SIZE: expected an integer, got 'abc'")


def test_commands_that_sign_nothing_run_without_a_secret_key(app_url: str, redis_url: str) -> None:
    env = {**NO_SECRET, "DATABASE_URL": app_url, "REDIS_URL": redis_url}
    result = CliRunner().invoke(main, ["tenants", "list"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)


def test_serve_names_a_malformed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("erp.server.run_gunicorn", _never)
    result = CliRunner().invoke(main, ["serve"], env={"SECRET_KEY": "k", "PORT": "eighty"})
    assert result.exit_code == 2
    assert "PORT: expected an integer, got 'eighty'" in result.stderr
    assert "Traceback" not in result.output


def test_erp_dev_generates_one_secret_key_and_keeps_it(tmp_path: Path) -> None:
    first = _state(tmp_path)
    assert len(first["secret_key"]) >= 32
    _save(tmp_path, first)
    assert (tmp_path / "dev.json").stat().st_mode & 0o777 == 0o600
    assert _state(tmp_path)["secret_key"] == first["secret_key"]
    assert _state(tmp_path / "elsewhere")["secret_key"] != first["secret_key"]
