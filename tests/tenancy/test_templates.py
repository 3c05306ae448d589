"""Provisioning templates: validated on load, faults named by file and field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from erp import templates
from erp.http import ErpFlask
from erp.templates import TemplateError, load_template, parse_template, validate_all


@pytest.fixture
def template_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: ErpFlask) -> Iterator[Path]:
    """An empty templates directory (the app fixture registers every domain's sections)."""
    monkeypatch.setattr(templates, "TEMPLATES_DIR", tmp_path)
    load_template.cache_clear()
    yield tmp_path
    load_template.cache_clear()


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("description: ok\nbogus: 1\n", "bogus: unknown section"),
        ("description: [1, 2]\n", "description: must be a string"),
        ("description: ok\nledger: 7\n", "ledger: must be a mapping"),
        ("ledger:\n  accounts: nope\n", "ledger.accounts: must be a list"),
        (
            "ledger:\n  accounts:\n    - {code: '1000', name: Cash, type: rock}\n",
            "ledger.accounts[0].type:",
        ),
        (
            "ledger:\n  accounts:\n    - {code: '1000', name: Cash, type: asset, colour: red}\n",
            "ledger.accounts[0].colour: unknown field",
        ),
        ("description: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "a template is a mapping"),
        ("", "a template is a mapping"),
    ],
)
def test_an_invalid_template_names_its_file_and_field(
    template_dir: Path, text: str, field: str
) -> None:
    path = _write(template_dir, "broken", text)
    with pytest.raises(TemplateError) as caught:
        load_template("broken")
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert field in message, message


def test_every_problem_is_reported_at_once(template_dir: Path) -> None:
    _write(template_dir, "many", "description: 1\nbogus: 2\n")
    with pytest.raises(TemplateError, match=r"description: .*; bogus: "):
        load_template("many")


def test_validate_all_fails_on_any_invalid_template(template_dir: Path) -> None:
    _write(template_dir, "good", "description: fine\n")
    assert [t.name for t in validate_all()] == ["good"]
    _write(template_dir, "zbad", "nope: 1\n")
    load_template.cache_clear()
    with pytest.raises(TemplateError, match=r"zbad\.yaml"):
        validate_all()


@pytest.mark.parametrize("name", ["../default", "UPPER", "", "a/b", "x" * 64])
def test_template_names_are_checked(template_dir: Path, name: str) -> None:
    with pytest.raises(TemplateError, match="not valid"):
        load_template(name)


def test_a_missing_template_lists_the_available_ones(template_dir: Path) -> None:
    _write(template_dir, "present", "description: here\n")
    with pytest.raises(TemplateError, match=r"'absent' does not exist \(available: present\)"):
        load_template("absent")


def test_every_shipped_template_validates(app: ErpFlask) -> None:
    load_template.cache_clear()
    loaded = validate_all()
    names = {t.name for t in loaded}
    assert {"default", "empty"} <= names
    assert names == {p.stem for p in templates.TEMPLATES_DIR.glob("*.yaml")}


def test_parse_template_is_pure(app: ErpFlask) -> None:
    t = parse_template("inline", "description: inline\n", "<inline>")
    assert t.sections == {"description": "inline"}
