"""Standard Webhooks signing, checked against the reference library and its test vector."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from erp.webhooks import signing

# The published test vector (standard-webhooks spec and its libraries' tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_test_vector() -> None:
    ours = signing.signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert ours == VECTOR_SIGNATURE
    reference = Webhook(VECTOR_SECRET).sign(
        VECTOR_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC), VECTOR_BODY.decode()
    )
    assert reference == VECTOR_SIGNATURE


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_headers_verify_with_the_reference_library_for_each_secret() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = b'{"type":"x","timestamp":"2026-12-01T09:00:00.000000Z","data":{}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers("0b7e5a0e-0000-4000-8000-000000000000", now, body, [new, old])
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers) == {
            "type": "x",
            "timestamp": "2026-12-01T09:00:00.000000Z",
            "data": {},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)
