"""Inbound shop signatures: Standard Webhooks checked against the reference library and
the spec's published vector, Shopify's HMAC against an independent computation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from erp.orders.signatures import MAX_SIGNATURES, verify_shopify, verify_standard

# The published test vector: standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py, test_sign_function (the same values are in the
# other libraries' tests and in the spec's "Testing" section).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_NOW = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)

OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()


def vector_headers(signature: str = VECTOR_SIGNATURE, **changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": signature,
    }
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return headers


def reference_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """Headers signed by the reference library (standardwebhooks.Webhook.sign)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


# --- Standard Webhooks ---------------------------------------------------------------


def test_the_published_vector_verifies() -> None:
    assert Webhook(VECTOR_SECRET).sign(VECTOR_ID, VECTOR_NOW, VECTOR_BODY.decode()) == (
        VECTOR_SIGNATURE
    )
    assert verify_standard([VECTOR_SECRET], vector_headers(), VECTOR_BODY, VECTOR_NOW) == VECTOR_ID


def test_the_secret_without_its_prefix_is_the_same_key() -> None:
    bare = VECTOR_SECRET.removeprefix("whsec_")
    assert verify_standard([bare], vector_headers(), VECTOR_BODY, VECTOR_NOW) == VECTOR_ID


def test_one_valid_signature_among_several_suffices() -> None:
    forged = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"v1a,abcd {forged} v2,{VECTOR_SIGNATURE[3:]} {VECTOR_SIGNATURE} {forged}"
    assert verify_standard([VECTOR_SECRET], vector_headers(header), VECTOR_BODY, VECTOR_NOW) == (
        VECTOR_ID
    )
    # the same signature under another version is not a v1 signature
    only_v2 = f"v2,{VECTOR_SIGNATURE[3:]}"
    assert (
        verify_standard([VECTOR_SECRET], vector_headers(only_v2), VECTOR_BODY, VECTOR_NOW) is None
    )


def test_any_of_the_secrets_may_have_signed() -> None:
    """Around a rotation the channel holds the new and the old secret."""
    ok = verify_standard([OTHER_SECRET, VECTOR_SECRET], vector_headers(), VECTOR_BODY, VECTOR_NOW)
    assert ok == VECTOR_ID
    assert verify_standard([OTHER_SECRET], vector_headers(), VECTOR_BODY, VECTOR_NOW) is None
    assert verify_standard([], vector_headers(), VECTOR_BODY, VECTOR_NOW) is None


def test_a_changed_body_id_or_timestamp_fails() -> None:
    assert (
        verify_standard([VECTOR_SECRET], vector_headers(), b'{"test": 2432232315}', VECTOR_NOW)
        is None
    )
    changed_id = vector_headers(webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJeK")
    assert verify_standard([VECTOR_SECRET], changed_id, VECTOR_BODY, VECTOR_NOW) is None
    later = vector_headers(webhook_timestamp=str(VECTOR_TIMESTAMP + 1))
    assert verify_standard([VECTOR_SECRET], later, VECTOR_BODY, VECTOR_NOW) is None


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_a_timestamp_within_five_minutes_either_side_is_accepted(skew: int) -> None:
    now = VECTOR_NOW + timedelta(seconds=skew)
    assert verify_standard([VECTOR_SECRET], vector_headers(), VECTOR_BODY, now) == VECTOR_ID


@pytest.mark.parametrize("skew", [-301, 301, -86400, 86400])
def test_a_timestamp_more_than_five_minutes_off_is_refused(skew: int) -> None:
    now = VECTOR_NOW + timedelta(seconds=skew)
    assert verify_standard([VECTOR_SECRET], vector_headers(), VECTOR_BODY, now) is None


def test_header_names_are_case_insensitive() -> None:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "WEBHOOK-TIMESTAMP": str(VECTOR_TIMESTAMP),
        "Webhook-Signature": VECTOR_SIGNATURE,
    }
    assert verify_standard([VECTOR_SECRET], headers, VECTOR_BODY, VECTOR_NOW) == VECTOR_ID


def test_the_reference_library_signs_what_we_accept() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = '{"external_id": "shop-1001", "note": "crème brûlée"}'.encode()
    headers = reference_headers(OTHER_SECRET, "msg_2", now, body)
    assert verify_standard([VECTOR_SECRET, OTHER_SECRET], headers, body, now) == "msg_2"
    # and the reference library accepts what it signed: the two agree on the input
    Webhook(OTHER_SECRET).verify(body, headers)


@settings(max_examples=100, deadline=None)
@given(
    body=st.text(max_size=300),
    msg_id=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    key=st.binary(min_size=1, max_size=64),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_whatever_the_reference_library_signs_verifies(
    body: str, msg_id: str, key: bytes, skew: int
) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    signed_at = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    raw = body.encode()
    headers = reference_headers(secret, msg_id, signed_at, raw)
    now = signed_at + timedelta(seconds=skew)
    assert verify_standard([secret], headers, raw, now) == msg_id
    assert verify_standard([secret], headers, raw + b" ", now) is None


MALFORMED: list[dict[str, str]] = [
    {},
    {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP)},
    {"webhook-id": VECTOR_ID, "webhook-signature": VECTOR_SIGNATURE},
    {"webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": VECTOR_SIGNATURE},
    vector_headers(webhook_timestamp=f"{VECTOR_TIMESTAMP}.0"),
    vector_headers(webhook_timestamp=f"+{VECTOR_TIMESTAMP}"),
    vector_headers(webhook_timestamp=f" {VECTOR_TIMESTAMP}"),
    vector_headers(webhook_timestamp="1.614265330e9"),
    vector_headers(webhook_timestamp="-1"),
    vector_headers(webhook_timestamp="9" * 400),
    vector_headers(webhook_timestamp="١٦١٤٢٦٥٣٣٠"),  # Arabic-Indic digits: int() takes them
    vector_headers(webhook_timestamp=""),
    vector_headers(webhook_id=""),
    vector_headers(webhook_id="m" * 256),
    vector_headers(webhook_id="msg é"),
    vector_headers(""),
    vector_headers("v1,"),
    vector_headers("v1"),
    vector_headers("v1,!!!!"),
    vector_headers("v1," + base64.b64encode(b"x" * 31).decode()),
    vector_headers("v1," + base64.b64encode(b"x" * 33).decode()),
    vector_headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OÉ="),
    vector_headers("v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE="),  # URL-safe alphabet
    vector_headers(" ".join(["v1,AAAA"] * (MAX_SIGNATURES + 1) + [VECTOR_SIGNATURE])),
    vector_headers("v1," + "A" * 100_000),
]


@pytest.mark.parametrize("headers", MALFORMED)
def test_malformed_headers_are_refused_without_an_exception(headers: dict[str, str]) -> None:
    assert verify_standard([VECTOR_SECRET], headers, VECTOR_BODY, VECTOR_NOW) is None


def test_the_unpadded_vector_signature_is_still_that_signature() -> None:
    """Padding is optional in what we accept (the decoded bytes are compared)."""
    unpadded = VECTOR_SIGNATURE.rstrip("=")
    assert verify_standard([VECTOR_SECRET], vector_headers(unpadded), VECTOR_BODY, VECTOR_NOW) == (
        VECTOR_ID
    )


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!", "whsec_é", "whsec_A"])
def test_a_malformed_secret_is_skipped_not_raised(secret: str) -> None:
    headers = vector_headers()
    assert verify_standard([secret], headers, VECTOR_BODY, VECTOR_NOW) is None
    assert verify_standard([secret, VECTOR_SECRET], headers, VECTOR_BODY, VECTOR_NOW) == VECTOR_ID


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "Webhook-Id"]),
        st.text(max_size=200),
    ),
    st.binary(max_size=100),
)
def test_arbitrary_headers_never_raise(headers: dict[str, str], body: bytes) -> None:
    assert verify_standard([VECTOR_SECRET], headers, body, VECTOR_NOW) in (None, *headers.values())


# --- Shopify ----------------------------------------------------------------------------

SHOPIFY_SECRET = "shpss_0123456789abcdef0123456789abcdef"
SHOPIFY_BODY = b'{"id":820982911946154508,"email":"jon@example.com","order_number":1234}'
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def shopify_hmac(secret: bytes, body: bytes) -> str:
    """Computed here, independently: base64 of HMAC-SHA256(secret, raw body)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def shopify_headers(signature: str, webhook_id: str | None = WEBHOOK_ID) -> dict[str, str]:
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
    }
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    return headers


def test_a_shopify_signature_verifies_and_names_the_webhook_id() -> None:
    sig = shopify_hmac(SHOPIFY_SECRET.encode(), SHOPIFY_BODY)
    assert verify_shopify(SHOPIFY_SECRET, shopify_headers(sig), SHOPIFY_BODY) == WEBHOOK_ID


def test_a_known_hmac_sha256() -> None:
    """RFC 4231 test case 2 (key "Jefe"), base64: the digest is HMAC-SHA256 of the raw
    body keyed by the secret's bytes, nothing else mixed in."""
    body = b"what do ya want for nothing?"
    expected_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    sig = base64.b64encode(bytes.fromhex(expected_hex)).decode()
    assert verify_shopify("Jefe", shopify_headers(sig), body) == WEBHOOK_ID


def test_a_published_shopify_webhook_example() -> None:
    """The body, secret and X-Shopify-Hmac-Sha256 of sqlpage/SQLPage's Shopify webhook
    test (tests/sql_test_files/data/hmac_shopify_webhook.sql)."""
    body = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
    sig = "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="
    assert shopify_hmac(b"test-webhook-secret", body) == sig
    assert verify_shopify("test-webhook-secret", shopify_headers(sig), body) == WEBHOOK_ID


def test_shopify_header_names_are_case_insensitive() -> None:
    sig = shopify_hmac(SHOPIFY_SECRET.encode(), SHOPIFY_BODY)
    headers = {"x-shopify-hmac-sha256": sig, "x-shopify-webhook-id": WEBHOOK_ID}
    assert verify_shopify(SHOPIFY_SECRET, headers, SHOPIFY_BODY) == WEBHOOK_ID


def test_the_secret_is_keyed_as_its_utf8_bytes() -> None:
    secret = "clé secrète"
    sig = shopify_hmac(secret.encode("utf-8"), SHOPIFY_BODY)
    assert verify_shopify(secret, shopify_headers(sig), SHOPIFY_BODY) == WEBHOOK_ID
    latin1 = shopify_hmac(secret.encode("latin-1"), SHOPIFY_BODY)
    assert verify_shopify(secret, shopify_headers(latin1), SHOPIFY_BODY) is None


def test_a_wrong_shopify_signature_body_or_secret_fails() -> None:
    sig = shopify_hmac(SHOPIFY_SECRET.encode(), SHOPIFY_BODY)
    assert verify_shopify(SHOPIFY_SECRET, shopify_headers(sig), SHOPIFY_BODY + b"\n") is None
    assert verify_shopify(SHOPIFY_SECRET + "x", shopify_headers(sig), SHOPIFY_BODY) is None
    assert (
        verify_shopify("", shopify_headers(shopify_hmac(b"", SHOPIFY_BODY)), SHOPIFY_BODY) is None
    )
    hex_digest = hmac.new(SHOPIFY_SECRET.encode(), SHOPIFY_BODY, hashlib.sha256).hexdigest()
    assert verify_shopify(SHOPIFY_SECRET, shopify_headers(hex_digest), SHOPIFY_BODY) is None


@pytest.mark.parametrize("webhook_id", [None, "", "x" * 256, "id with spaces", "idé"])
def test_a_missing_or_malformed_webhook_id_fails(webhook_id: str | None) -> None:
    sig = shopify_hmac(SHOPIFY_SECRET.encode(), SHOPIFY_BODY)
    assert verify_shopify(SHOPIFY_SECRET, shopify_headers(sig, webhook_id), SHOPIFY_BODY) is None


@pytest.mark.parametrize("signature", ["", "!!!", "é" * 44, "A" * 10_000, "AAAA"])
def test_a_malformed_shopify_signature_fails_without_an_exception(signature: str) -> None:
    assert verify_shopify(SHOPIFY_SECRET, shopify_headers(signature), SHOPIFY_BODY) is None
