"""The `ledger` section of provisioning templates: a chart of accounts.

```yaml
ledger:
  accounts:
    - {code: "1000", name: Cash, type: asset, guard: non_negative}
    - {code: "3100", name: Retained earnings, type: equity, role: retained_earnings}
    - {code: "1010", name: Petty cash, type: asset, parent: "1000"}
```
Accounts take the tenant's base currency unless they name one.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp.currencies import CURRENCIES
from erp.ledger import services
from erp.ledger.commands import NewAccount
from erp.ledger.models import ACCOUNT_TYPES, GUARDS, ROLES, Account

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FIELDS = {"code", "name", "type", "currency", "guard", "role", "parent"}


def _check_account(i: int, acct: Any, seen: set[str]) -> list[str]:
    where = f"accounts[{i}]"
    if not isinstance(acct, dict):
        return [f"{where}: must be a mapping"]
    problems = [f"{where}.{k}: unknown field" for k in sorted(set(acct) - _FIELDS)]
    code = acct.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        problems.append(f"{where}.code: must match {_CODE.pattern}")
    elif code in seen:
        problems.append(f"{where}.code: {code} appears twice")
    else:
        seen.add(code)
    if not isinstance(acct.get("name"), str) or not acct["name"]:
        problems.append(f"{where}.name: required")
    if acct.get("type") not in ACCOUNT_TYPES:
        problems.append(f"{where}.type: one of {', '.join(ACCOUNT_TYPES)}")
    if "currency" in acct and acct["currency"] not in CURRENCIES:
        problems.append(f"{where}.currency: not an ISO 4217 code")
    if acct.get("guard", "none") not in GUARDS:
        problems.append(f"{where}.guard: one of {', '.join(GUARDS)}")
    if acct.get("role") is not None and acct["role"] not in ROLES:
        problems.append(f"{where}.role: one of {', '.join(ROLES)}")
    if "parent" in acct and acct["parent"] not in seen:
        problems.append(f"{where}.parent: must name an account listed before it")
    return problems


def validate(section: Any) -> list[str]:
    if not isinstance(section, dict) or set(section) != {"accounts"}:
        return ["must be a mapping with one key, accounts"]
    accounts = section["accounts"]
    if not isinstance(accounts, list):
        return ["accounts: must be a list"]
    seen: set[str] = set()
    return [p for i, a in enumerate(accounts) for p in _check_account(i, a, seen)]


def apply(s: Session, section: Any, base_currency: str) -> None:
    ids: dict[str, Any] = dict(s.execute(select(Account.code, Account.id)).all())
    for acct in section["accounts"]:
        if acct["code"] in ids:
            continue
        created = services.create_account(
            s,
            NewAccount(
                code=acct["code"],
                name=acct["name"],
                type=acct["type"],
                currency=acct.get("currency", base_currency),
                parent_id=ids.get(acct["parent"]) if "parent" in acct else None,
                guard=acct.get("guard", "none"),
                role=acct.get("role"),
            ),
        )
        ids[created.code] = created.id
