"""Provisioning templates (tenants/templates/*.yaml), validated when loaded.

A template is a mapping of sections; each domain registers the sections it
understands with a validator and an apply function. An unknown section, or one
its validator refuses, fails the load with the file and the path of the fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from sqlalchemy.orm import Session

from erp.paths import TEMPLATES

TEMPLATES_DIR = TEMPLATES
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class TemplateError(ValueError):
    """A template that does not validate; the message names the file and field."""


Validator = Callable[[Any], list[str]]
Applier = Callable[[Session, Any, str], None]


@dataclass(frozen=True)
class Section:
    name: str
    validate: Validator
    apply: Applier
    order: int


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, validate: Validator, apply: Applier, order: int = 100) -> None:
    """Called by a domain's services module: it provisions `name` from templates."""
    section = Section(name, validate, apply, order)
    if _SECTIONS.get(name) != section:
        _SECTIONS[name] = section
        load_template.cache_clear()


@dataclass(frozen=True)
class Template:
    name: str
    sections: dict[str, Any]

    def apply(self, s: Session, base_currency: str) -> None:
        for section in sorted((_SECTIONS[k] for k in self.sections), key=lambda x: x.order):
            section.apply(s, self.sections[section.name], base_currency)


def _qualify(section: str, problem: str) -> str:
    """A validator's "accounts[0].code: message" (or bare "message") -> a full field path."""
    path, sep, message = problem.partition(": ")
    if not sep or " " in path:  # no path: the section itself is at fault
        return f"{section}: {problem}"
    return f"{section}{'' if path.startswith('[') else '.'}{path}: {message}"


def _ensure_sections() -> None:
    """Every domain's sections, whether or not an app was created (CLI, dev server)."""
    from erp.domains import register_sections

    register_sections()


def parse_template(name: str, text: str, source: str) -> Template:
    _ensure_sections()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: a template is a mapping of sections")
    problems: list[str] = []
    for key, value in data.items():
        section = _SECTIONS.get(key)
        if section is None:
            problems.append(f"{key}: unknown section (known: {', '.join(sorted(_SECTIONS))})")
            continue
        problems += [_qualify(key, p) for p in section.validate(value)]
    if problems:
        raise TemplateError(f"{source}: " + "; ".join(problems))
    return Template(name, data)


@cache
def load_template(name: str) -> Template:
    if not _NAME_RE.match(name):
        raise TemplateError(f"template name {name!r} is not valid")
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_templates())
        raise TemplateError(f"template {name!r} does not exist (available: {known})")
    return parse_template(name, path.read_text(), str(path))


def available_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def validate_all() -> list[Template]:
    """Load every template; raises TemplateError on the first invalid one."""
    return [load_template(n) for n in available_templates()]


def _validate_description(value: Any) -> list[str]:
    return [] if isinstance(value, str) else ["must be a string"]


register_section("description", _validate_description, lambda _s, _v, _c: None, order=0)
