"""The `inventory` section of provisioning templates: the tenant's locations.

```yaml
inventory:
  locations:
    - {code: MAIN, name: Main warehouse, kind: warehouse, default: true}
    - {code: MAIN-A, name: Aisle A, kind: zone, parent: MAIN}
```
Exactly one location is the default (the first warehouse when none says so). Applying
also records the tenant's stock currency (its base currency); what exists is kept, so
applying twice changes nothing.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp.inventory.models import LOCATION_KINDS, PARENT_KINDS, Location, Settings

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FIELDS = {"code", "name", "kind", "parent", "default", "allow_negative"}


def _check_location(i: int, loc: Any, kinds: dict[str, str]) -> list[str]:
    where = f"locations[{i}]"
    if not isinstance(loc, dict):
        return [f"{where}: must be a mapping"]
    problems = [f"{where}.{k}: unknown field" for k in sorted(set(loc) - _FIELDS)]
    code = loc.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        problems.append(f"{where}.code: must match {_CODE.pattern}")
    elif code in kinds:
        problems.append(f"{where}.code: {code} appears twice")
    name = loc.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        problems.append(f"{where}.name: required, 1-200 characters")
    kind = loc.get("kind")
    if kind not in LOCATION_KINDS:
        problems.append(f"{where}.kind: one of {', '.join(LOCATION_KINDS)}")
    parent = loc.get("parent")
    if kind == "warehouse" and parent is not None:
        problems.append(f"{where}.parent: a warehouse has no parent")
    elif (
        isinstance(kind, str)
        and kind in PARENT_KINDS
        and kinds.get(str(parent)) not in (PARENT_KINDS[kind])
    ):
        problems.append(
            f"{where}.parent: must name a {' or '.join(PARENT_KINDS[kind])} listed before it"
        )
    for flag in ("default", "allow_negative"):
        if flag in loc and not isinstance(loc[flag], bool):
            problems.append(f"{where}.{flag}: true or false")
    if isinstance(code, str) and isinstance(kind, str):
        kinds[code] = kind
    return problems


def validate(section: Any) -> list[str]:
    if not isinstance(section, dict) or set(section) != {"locations"}:
        return ["must be a mapping with one key, locations"]
    locations = section["locations"]
    if not isinstance(locations, list) or not locations:
        return ["locations: must be a non-empty list"]
    kinds: dict[str, str] = {}
    problems = [p for i, loc in enumerate(locations) for p in _check_location(i, loc, kinds)]
    defaults = [loc for loc in locations if isinstance(loc, dict) and loc.get("default")]
    if len(defaults) > 1:
        problems.append("locations: at most one location is the default")
    if not any(isinstance(loc, dict) and loc.get("kind") == "warehouse" for loc in locations):
        problems.append("locations: at least one warehouse is required")
    return problems


def _default_code(locations: list[dict[str, Any]]) -> str:
    for loc in locations:
        if loc.get("default"):
            return str(loc["code"])
    return str(next(loc["code"] for loc in locations if loc["kind"] == "warehouse"))


def apply(s: Session, section: Any, base_currency: str) -> None:
    if s.scalar(select(Settings.id)) is None:
        s.add(Settings(id=uuid.uuid4(), currency=base_currency))
    existing = {
        code: (id_, kind)
        for code, id_, kind in s.execute(select(Location.code, Location.id, Location.kind))
    }
    has_default = s.scalar(select(Location.id).where(Location.is_default)) is not None
    default = _default_code(section["locations"])
    for loc in section["locations"]:
        if loc["code"] in existing:
            continue
        parent = existing.get(loc.get("parent", ""))
        row = Location(
            id=uuid.uuid4(),
            code=loc["code"],
            name=loc["name"],
            kind=loc["kind"],
            parent_id=parent[0] if parent else None,
            parent_kind=parent[1] if parent else None,
            allow_negative=loc.get("allow_negative", False),
            is_default=not has_default and loc["code"] == default,
        )
        s.add(row)
        s.flush()
        existing[row.code] = (row.id, row.kind)
