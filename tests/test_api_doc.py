"""docs/api.md, the API contract, names exactly the endpoints the app serves.

Every METHOD /path written in it (outside "Planned") must be served, and every
route the app serves under /api/v1 and /ops/v1 must be written in it: the page can
neither promise what does not exist nor leave out what does.
"""

from __future__ import annotations

import re
from pathlib import Path

from erp.http import ErpFlask

ROOT = Path(__file__).resolve().parents[1]
METHODS = "GET|POST|PATCH|PUT|DELETE"
CALL = re.compile(rf"`((?:{METHODS})(?:\|(?:{METHODS}))*) (/[^`?\s]*)")
BASES = ("/api/v1", "/ops/v1", "/healthz", "/readyz", "/api/docs", "/auth/", "/app/")


def _normal(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.rstrip("/"))


def documented() -> set[tuple[str, str]]:
    """(method, absolute path) of every call api.md writes, each under its section's base."""
    text = (ROOT / "docs" / "api.md").read_text()
    calls: set[tuple[str, str]] = set()
    base = ""
    for section in re.split(r"^(?=#{2,3} )", text, flags=re.M):
        heading = section.splitlines()[0] if section.startswith("#") else ""
        if heading.startswith("## "):
            m = re.search(r"`(/\w+/v\d+)`", heading)
            base = m.group(1) if m else ""
        if heading.startswith("## Planned"):
            continue
        for methods, path in CALL.findall(section):
            if "<" in path:  # a pattern (`POST /<resource>/{id}/<verb>`), not a call
                continue
            full = path if path.startswith(BASES) else base + path
            calls |= {(method, _normal(full)) for method in methods.split("|")}
    return calls


def served(app: ErpFlask) -> set[tuple[str, str]]:
    calls = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(BASES) and not rule.rule.startswith("/api/docs/assets"):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                calls.add((method, _normal(rule.rule)))
    return calls


def test_api_doc_names_exactly_the_served_endpoints(app: ErpFlask) -> None:
    doc, live = documented(), served(app)
    assert ("POST", "/api/v1/ledger/periods/{}/close") in doc  # the parser reads the page
    assert not doc - live, f"docs/api.md promises what is not served: {sorted(doc - live)}"
    assert not live - doc, f"served but not in docs/api.md: {sorted(live - doc)}"


def test_readme_links_the_contract_in_this_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/api.md)" in readme
    assert "shared/API.md" not in readme
