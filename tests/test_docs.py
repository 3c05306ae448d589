"""The operator-facing docs stay true: every setting and problem type is documented."""

from __future__ import annotations

import re
from pathlib import Path

from erp.errors import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_is_in_the_readme() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "platform" / "erp").rglob("*.py"))
    names = set(re.findall(r"""environ(?:\.get)?\(\s*["']([A-Z_]+)["']""", source))
    names |= set(re.findall(r"""_env_(?:int|bool)\(\s*["']([A-Z_]+)["']""", source))
    names |= set(re.findall(r"""envvar=["']([A-Z_]+)["']""", source))
    assert "DATABASE_URL" in names
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md, Configuration, lacks {missing}"


def test_every_problem_slug_is_documented() -> None:
    doc = (ROOT / "docs" / "problems.md").read_text()
    missing = sorted(slug for slug in PROBLEM_TYPES if f"`{slug}`" not in doc)
    assert not missing, f"docs/problems.md lacks {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make run" in head
    assert "make test" in head
