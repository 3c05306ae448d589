"""Bearer secrets: API keys (`erp_<env>_<public id>_<secret>`) and operator tokens.

The public id finds the row; only SHA-256 of the secret is stored. The secret is
43 base62 characters (over 255 random bits), so a fast hash is safe here: there
is nothing to brute-force that is smaller than the secret itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

_BASE62 = string.digits + string.ascii_letters
_PUBLIC_ALPHABET = string.digits + string.ascii_lowercase
PUBLIC_ID_LEN = 12
SECRET_LEN = 43

API_KEY_RE = re.compile(r"^erp_(live|test)_([a-z0-9]{12})_([0-9A-Za-z]{43})$")
OPERATOR_TOKEN_RE = re.compile(r"^erpop_([a-z0-9]{12})_([0-9A-Za-z]{43})$")


@dataclass(frozen=True)
class Credential:
    env: str
    public_id: str
    secret: str

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_public_id() -> str:
    return _random(_PUBLIC_ALPHABET, PUBLIC_ID_LEN)


def new_secret() -> str:
    return _random(_BASE62, SECRET_LEN)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def format_api_key(env: str, public_id: str, secret: str) -> str:
    return f"erp_{env}_{public_id}_{secret}"


def api_key_prefix(env: str, public_id: str) -> str:
    return f"erp_{env}_{public_id}"


def parse_api_key(raw: str) -> Credential | None:
    m = API_KEY_RE.match(raw)
    return Credential(m.group(1), m.group(2), m.group(3)) if m else None


def format_operator_token(public_id: str, secret: str) -> str:
    return f"erpop_{public_id}_{secret}"


def parse_operator_token(raw: str) -> Credential | None:
    m = OPERATOR_TOKEN_RE.match(raw)
    return Credential("op", m.group(1), m.group(2)) if m else None


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
