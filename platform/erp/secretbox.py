"""Secrets at rest: the one place columns holding third-party secrets are encrypted.

`ENCRYPTION_KEYS` is a comma-separated list of Fernet keys (DESIGN.md §6): the
first encrypts, every one decrypts (`cryptography`'s MultiFernet). A domain that
stores a secret (a webhook endpoint's signing secret, a channel's, an SSO client
secret) keeps the token `SecretBox.encrypt` returns in a text column and registers
that column (`Registry.encrypted`), so `erp secrets rotate` re-encrypts it with
the first key after an operator put a new key in front of the list.

Key rotation, for the operator:
1. put a new key first in `ENCRYPTION_KEYS` and roll every process;
2. `erp secrets rotate` (re-encrypts every registered column in every tenant);
3. drop the old key from the list and roll again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import text

from erp.config import UNSET_KEYS, parse_keys

__all__ = ["UNSET_KEYS", "EncryptedColumn", "SecretBox", "SecretBoxError", "parse_keys"]


class SecretBoxError(ValueError):
    """A token no configured key opens (wrong keys, or a damaged value)."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class EncryptedColumn:
    """A text column of a tenant table holding `SecretBox` tokens (NULL allowed)."""

    table: str  # schema-qualified, e.g. "webhooks.endpoints"
    column: str
    key: str = "id"  # the primary key column rows are updated by

    def __post_init__(self) -> None:
        parts = [*self.table.split("."), self.column, self.key]
        if self.table.count(".") != 1 or not all(_IDENT.match(p) for p in parts):
            raise ValueError(f"not a schema.table and column names: {self.table}.{self.column}")


class SecretBox:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretBoxError(UNSET_KEYS)
        self._fernets = [Fernet(k.encode("ascii")) for k in keys]
        self._multi = MultiFernet(self._fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretBoxError(
                "a stored secret opens with none of ENCRYPTION_KEYS (was a key dropped "
                "before `erp secrets rotate` ran?)"
            ) from exc

    def is_current(self, token: str) -> bool:
        """Whether the first (encrypting) key opens `token`: rotation would not change it."""
        try:
            self._fernets[0].decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, token: str) -> str:
        """`token` re-encrypted with the first key (unchanged if it already is)."""
        if self.is_current(token):
            return token
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretBoxError("a stored secret opens with none of ENCRYPTION_KEYS") from exc


@lru_cache(maxsize=8)
def box_for(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)


def current_box() -> SecretBox:
    """The box of this process's settings (the current app's, else the worker's/CLI's).

    Raises SecretBoxError naming ENCRYPTION_KEYS when none are configured.
    """
    from erp.db import db

    return box_for(db.settings.encryption_keys)


def rotate_tenant(session: Any, columns: Sequence[EncryptedColumn], box: SecretBox) -> int:
    """Re-encrypt with the first key every token of `columns` the pinned tenant holds
    (rows locked while read); the number of values that changed."""
    changed = 0
    for c in columns:
        rows = session.execute(
            text(
                f"SELECT {c.key}, {c.column} FROM {c.table} WHERE {c.column} IS NOT NULL FOR UPDATE"
            )
        ).all()
        for key, token in rows:
            fresh = box.rotate(token)
            if fresh != token:
                session.execute(
                    text(f"UPDATE {c.table} SET {c.column} = :v WHERE {c.key} = :k"),
                    {"v": fresh, "k": key},
                )
                changed += 1
    return changed
