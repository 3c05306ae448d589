"""The ID token is checked before anything trusts it: signature, issuer, audience,
expiry and nonce (Authlib's validation as erp.auth.oidc configures it). Tokens are
signed here with a key the client's discovery document names, so each claim can be
made wrong on its own, as no well-behaved provider would."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from erp.auth import oidc
from erp.auth.services import ConnectionConfig

ISSUER = "https://idp.test.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, another key


@pytest.fixture
def conn() -> ConnectionConfig:
    c = ConnectionConfig(None, ISSUER, f"client-{uuid.uuid4().hex[:6]}", "secret")
    oidc.client(c).server_metadata.update(
        issuer=ISSUER,
        jwks={"keys": [KEY.as_dict(private=False)]},
        jwks_uri=f"{ISSUER}/jwks",
        id_token_signing_alg_values_supported=["RS256"],
        _loaded_at=time.time(),
    )
    return c


def _token(conn: ConnectionConfig, key: RSAKey = KEY, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": conn.client_id,
        "sub": "subject-1",
        "iat": now,
        "exp": now + 300,
        "nonce": "the-nonce",
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    signed = jwt.encode({"alg": "RS256", "kid": "k1"}, body, key)
    return {"id_token": signed, "access_token": "at"}


def test_a_valid_token_passes(conn: ConnectionConfig) -> None:
    claims = oidc.validate_id_token(conn, _token(conn), "the-nonce")
    assert claims["sub"] == "subject-1"


@pytest.mark.parametrize(
    ("claims", "nonce"),
    [
        pytest.param({"iss": "https://evil.example"}, "the-nonce", id="wrong-issuer"),
        pytest.param({"aud": "someone-else"}, "the-nonce", id="wrong-audience"),
        pytest.param({"exp": int(time.time()) - 3600}, "the-nonce", id="expired"),
        pytest.param({}, "another-nonce", id="wrong-nonce"),
        pytest.param({"nonce": None}, "the-nonce", id="no-nonce"),
        pytest.param({"iss": None}, "the-nonce", id="no-issuer"),
    ],
)
def test_a_wrong_claim_is_refused(
    conn: ConnectionConfig, claims: dict[str, Any], nonce: str
) -> None:
    with pytest.raises(oidc.SignInError) as caught:
        oidc.validate_id_token(conn, _token(conn, **claims), nonce)
    assert caught.value.reason == "id-token"


def test_a_token_signed_by_another_key_is_refused(conn: ConnectionConfig) -> None:
    with pytest.raises(oidc.SignInError) as caught:
        oidc.validate_id_token(conn, _token(conn, key=OTHER), "the-nonce")
    assert caught.value.reason == "id-token"


def test_a_tampered_flow_cookie_is_refused(app: Any) -> None:
    with app.app_context():
        conn = ConnectionConfig(None, ISSUER, "c", "s")
        oidc.client(conn).server_metadata.update(
            issuer=ISSUER, authorization_endpoint=f"{ISSUER}/auth", _loaded_at=time.time()
        )
        url, cookie = oidc.begin(conn, str(uuid.uuid4()), "https://erp.example/cb", None)
        assert "code_challenge_method=S256" in url
        assert oidc.read_flow(cookie).redirect_uri == "https://erp.example/cb"
        for bad in (cookie[:-2] + "xx", "", "not-a-token", "é" * 10):
            with pytest.raises(oidc.SignInError):
                oidc.read_flow(bad)


def test_discovery_naming_another_issuer_is_refused() -> None:
    conn = ConnectionConfig(None, ISSUER, f"c-{uuid.uuid4().hex[:6]}", "s")
    oidc.client(conn).server_metadata.update(issuer="https://other.example", _loaded_at=1.0)
    with pytest.raises(oidc.SignInError) as caught:
        oidc.metadata(conn)
    assert caught.value.reason == "discovery"
