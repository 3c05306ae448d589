"""The operator-facing docs stay true: every setting is documented, and the problem
types documented are exactly those served, with their status and title."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from erp.errors import PROBLEM_TYPES
from tests.problem_docs import documented_problems

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_is_in_the_readme() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "platform" / "erp").rglob("*.py"))
    names = set(re.findall(r"""environ(?:\.get)?\(\s*["']([A-Z_]+)["']""", source))
    names |= set(re.findall(r"""_env_(?:int|bool)\(\s*["']([A-Z_]+)["']""", source))
    names |= set(re.findall(r"""envvar=["']([A-Z_]+)["']""", source))
    # config.py reads each variable through its checking reader: r.integer("DB_POOL_SIZE", ...)
    names |= set(re.findall(r"""\br\.\w+\(\s*["']([A-Z_]+)["']""", source))
    assert {"DB_POOL_SIZE", "DB_LOCK_TIMEOUT_MS", "SECRET_KEY"} <= names
    assert "DATABASE_URL" in names
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md, Configuration, lacks {missing}"


def test_problem_types_served_are_exactly_those_documented() -> None:
    """erp.errors.PROBLEM_TYPES (what the app can answer) against docs/problems.md's table."""
    served, documented = PROBLEM_TYPES, documented_problems()
    faults = [f"{s}: served, not in docs/problems.md" for s in sorted(served.keys() - documented)]
    faults += [
        f"{s}: in docs/problems.md, never served" for s in sorted(documented.keys() - served)
    ]
    faults += [
        f"{s}: served as {served[s][1]} {served[s][0]!r}, "
        f"documented as {documented[s][1]} {documented[s][0]!r}"
        for s in sorted(served.keys() & documented.keys())
        if served[s] != documented[s]
    ]
    assert not faults, "\n".join(faults)


PROBLEMS_MD = """
| slug | status | title |
|---|---|---|
| `not-found` | 404 | Not found |
| `conflict` | 409 | Conflict |

| other | table |
|---|---|
| `ignored` | here |
"""


def test_the_problem_table_is_read() -> None:
    assert documented_problems(PROBLEMS_MD) == {
        "not-found": ("Not found", 404),
        "conflict": ("Conflict", 409),
    }


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("| 409 |", "| 4O9 |", "does not parse"),
        ("`conflict`", "`not-found`", "listed twice"),
        ("| slug |", "| name |", "expected one table"),
    ],
)
def test_the_problem_table_is_read_strictly(old: str, new: str, error: str) -> None:
    """Rows the parser cannot read fail the test above instead of vanishing from it."""
    with pytest.raises(ValueError, match=error):
        documented_problems(PROBLEMS_MD.replace(old, new))


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make run" in head
    assert "make test" in head
