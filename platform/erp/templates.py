"""Provisioning templates (tenants/templates/*.yaml), validated when loaded.

A template is a mapping of sections; each domain registers the sections it
understands (`Registry.template_section`) with a validator and an apply
function. An unknown section, or one its validator refuses, fails the load with
the file and the path of the fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from sqlalchemy.orm import Session

from erp.paths import TEMPLATES
from erp.registry import TemplateSection, registry

TEMPLATES_DIR = TEMPLATES
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class TemplateError(ValueError):
    """A template that does not validate; the message names the file and field."""


@dataclass(frozen=True)
class Template:
    name: str
    sections: dict[str, Any]

    def apply(self, s: Session, base_currency: str) -> None:
        known = known_sections()
        for section in sorted((known[k] for k in self.sections), key=lambda x: x.order):
            section.apply(s, self.sections[section.name], base_currency)


def _qualify(section: str, problem: str) -> str:
    """A validator's "accounts[0].code: message" (or bare "message") -> a full field path."""
    path, sep, message = problem.partition(": ")
    if not sep or " " in path:  # no path: the section itself is at fault
        return f"{section}: {problem}"
    return f"{section}{'' if path.startswith('[') else '.'}{path}: {message}"


def parse_template(name: str, text: str, source: str) -> Template:
    known = known_sections()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: a template is a mapping of sections")
    problems: list[str] = []
    for key, value in data.items():
        section = known.get(key)
        if section is None:
            problems.append(f"{key}: unknown section (known: {', '.join(sorted(known))})")
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


#: The core's own section: free text, provisions nothing.
_DESCRIPTION = TemplateSection("description", _validate_description, lambda _s, _v, _c: None, 0)


def known_sections() -> dict[str, TemplateSection]:
    """Every section a template may hold: the core's and the domains'."""
    return {"description": _DESCRIPTION, **registry().sections}
