"""Secrets at rest (erp/secretbox.py): keys, rotation, refusals, `erp secrets rotate`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from erp import create_app
from erp.cli import main
from erp.config import Settings, SettingsError
from erp.migrate import policy_sql
from erp.registry import Registry, default_registry
from erp.secretbox import (
    EncryptedColumn,
    SecretBox,
    SecretBoxError,
    generate_key,
    parse_keys,
)
from tests.conftest import TEST_ENCRYPTION_KEY, TenantHandle
from tests.core.helpers import owner_sql


def test_keys_are_checked_and_never_echoed() -> None:
    good = generate_key()
    assert parse_keys(f" {good} ,") == (good,)
    bad = "hunter2-not-a-key"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ENCRYPTION_KEYS": f"{good},{bad}"})
    assert "ENCRYPTION_KEYS: key 2 is not a Fernet key" in str(caught.value)
    assert bad not in str(caught.value)
    with pytest.raises(SettingsError, match="listed twice"):
        Settings.from_env({"ENCRYPTION_KEYS": f"{good},{good}"})
    with pytest.raises(SettingsError, match="ENCRYPTION_KEYS: key 1"):
        Settings.from_env({"ENCRYPTION_KEYS": "é" * 44})
    assert Settings.from_env({"ENCRYPTION_KEYS": good}).encryption_keys == (good,)
    assert Settings.from_env({}).encryption_keys == ()


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("whsec_ünïcode")
    assert "whsec" not in token
    both = SecretBox([new, old])
    assert both.decrypt(token) == "whsec_ünïcode"
    assert not both.is_current(token)
    fresh = both.rotate(token)
    assert fresh != token
    assert both.is_current(fresh)
    assert both.rotate(fresh) == fresh  # already under the first key: unchanged
    assert SecretBox([new]).decrypt(fresh) == "whsec_ünïcode"
    with pytest.raises(SecretBoxError, match="none of ENCRYPTION_KEYS"):
        SecretBox([new]).decrypt(token)
    with pytest.raises(SecretBoxError):
        SecretBox([new]).decrypt("not a token at all ✗")
    with pytest.raises(SecretBoxError, match="ENCRYPTION_KEYS is not set"):
        SecretBox([])


def test_column_names_are_identifiers() -> None:
    with pytest.raises(ValueError, match=r"not a schema\.table"):
        EncryptedColumn("no_schema", "secret")
    with pytest.raises(ValueError, match=r"not a schema\.table"):
        EncryptedColumn("a.b; DROP TABLE x", "secret")
    r = Registry()
    r.encrypted("webhooks.endpoints", "secret")
    with pytest.raises(ValueError, match="twice"):
        r.encrypted("webhooks.endpoints", "secret")


def test_an_app_storing_secrets_refuses_to_start_without_keys(settings: Settings) -> None:
    domains = Registry()
    domains.encrypted("sample.vault", "secret")
    with pytest.raises(SettingsError, match="ENCRYPTION_KEYS is not set"):
        create_app(settings.replace(encryption_keys=()), domains=domains)


TABLE = "scratch_secrets.vault"


@pytest.fixture
def vault(owner_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[EncryptedColumn]:
    """A tenant table (DESIGN.md §3) whose `secret` column is the only one the default
    registry lists: the domains' own columns (webhook secrets) hold rows other tests of
    this database made, under the test key, and must not be rotated away from it."""
    owner_sql(
        owner_engine,
        "CREATE SCHEMA scratch_secrets; GRANT USAGE ON SCHEMA scratch_secrets TO erp_app;"
        f"CREATE TABLE {TABLE} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(), secret text);"
        + policy_sql("tenant_table.sql", table=TABLE)
        + f"GRANT SELECT, INSERT, UPDATE ON {TABLE} TO erp_app",
    )
    column = EncryptedColumn(TABLE, "secret")
    reg = default_registry()
    monkeypatch.setattr(reg, "encrypted_columns", [column])
    yield column
    owner_sql(owner_engine, "DROP SCHEMA scratch_secrets CASCADE")


def test_rotate_reencrypts_every_tenants_secrets_with_the_first_key(
    vault: EncryptedColumn,
    owner_engine: Engine,
    app_url: str,
    owner_url: str,
    redis_url: str,
    tenant: TenantHandle,
    other_tenant: TenantHandle,
) -> None:
    old, new = generate_key(), generate_key()
    plain = {tenant.id: f"whsec_{uuid.uuid4().hex}", other_tenant.id: f"whsec_{uuid.uuid4().hex}"}
    for tid, secret in plain.items():
        owner_sql(
            owner_engine,
            f"INSERT INTO {TABLE} (tenant_id, secret) VALUES (:t, :s), (:t, NULL)",
            {"t": tid, "s": SecretBox([old]).encrypt(secret)},
        )
    env = {"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url, "REDIS_URL": redis_url}

    def rotate(keys: str) -> Any:
        return CliRunner().invoke(main, ["secrets", "rotate"], env={**env, "ENCRYPTION_KEYS": keys})

    refused = rotate(new)  # the old key is gone: nothing can be opened, nothing changes
    assert refused.exit_code == 1
    assert "none of ENCRYPTION_KEYS" in refused.stderr
    # other tests' secrets (SSO client secrets) are under the suite's key
    done = rotate(f"{new},{old},{TEST_ENCRYPTION_KEY}")
    assert done.exit_code == 0, (done.output, done.exception)
    assert f"{tenant.id}\t1 re-encrypted" in done.stdout
    assert "scratch_secrets.vault.secret" in done.stdout.splitlines()[-1]
    rows = owner_sql(
        owner_engine, f"SELECT tenant_id, secret FROM {TABLE} WHERE secret IS NOT NULL"
    )
    assert {r.tenant_id: SecretBox([new]).decrypt(r.secret) for r in rows} == plain
    again = rotate(f"{new},{old},{TEST_ENCRYPTION_KEY}")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1].startswith("0 secrets")
    # back to the suite's key, so later tests of this database read what they stored
    assert rotate(f"{TEST_ENCRYPTION_KEY},{new}").exit_code == 0


def test_rotate_and_the_worker_refuse_without_keys(
    vault: EncryptedColumn, app_url: str, owner_url: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url, "REDIS_URL": redis_url}
    env |= {"SECRET_KEY": "k", "ENCRYPTION_KEYS": ""}
    for args in (["secrets", "rotate"], ["worker", "--burst"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1
        assert "ENCRYPTION_KEYS is not set" in result.stderr


def test_generate_key_prints_a_working_key_alone() -> None:
    result = CliRunner().invoke(main, ["secrets", "generate-key"])
    assert result.exit_code == 0
    key = result.stdout.splitlines()[-1]
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"
