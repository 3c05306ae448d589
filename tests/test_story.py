"""The README's worked example is complete, and the comparison that checks it can fail.

tests/test_make_run.py runs the story against `make run`; this checks, without
servers, that the story tells the whole path and that a wrong answer is caught.
"""

from __future__ import annotations

from pathlib import Path

from tests.story import Outcome, Step, check, mismatches, story_steps

ROOT = Path(__file__).resolve().parents[1]


def test_the_story_walks_the_whole_path_and_shows_every_answer() -> None:
    steps = story_steps((ROOT / "README.md").read_text())
    code = [s.code for s in steps]
    assert "source .data/env" in code[0]
    wanted = [
        ("POST", "/ops/v1/tenants", '"slug": "acme"'),
        ("POST", "/api-keys", "$ERP_OPERATOR_TOKEN"),
        ("/api/v1/ledger/accounts", "$KEY"),
        ("POST", "/api/v1/ledger/transactions", "Idempotency-Key: "),
        ("/api/v1/ledger/reports/trial-balance",),
        ("POST", "/api/v1/ledger/periods/", "/close"),
    ]
    at = 0
    for needles in wanted:  # in this order, each in one step
        found = [i for i, c in enumerate(code) if i >= at and all(n in c for n in needles)]
        assert found, f"no story step after step {at} has {needles}"
        at = found[0]
    for step in steps:
        if "curl" in step.code or step.code.strip().endswith("list"):
            assert step.kind is not None, f"this step shows no answer:\n{step.code}"


def test_abbreviated_answers_match_and_differences_are_named() -> None:
    got = {"id": "3f2c", "slug": "acme", "n": 1, "ok": True, "items": [{"a": 1}, {"a": 2}]}
    assert mismatches({"id": "…", "slug": "acme", "items": [{"a": 2}]}, got) == []
    assert mismatches({"slug": "ac…"}, got) == []
    assert mismatches({"slug": "acme2"}, got) == ["$.slug: 'acme', the README shows 'acme2'"]
    assert mismatches({"slug": "x…"}, got) == ["$.slug: 'acme' does not start with 'x'"]
    assert mismatches({"gone": "…"}, got) == ["$.gone: missing"]
    assert mismatches({"n": True}, got)
    assert mismatches({"ok": 1}, got)
    assert mismatches({"items": [{"a": 3}]}, got) == ["$.items[0]: no item matches {'a': 3}"]
    # each item shown needs its own actual item
    assert mismatches({"items": [{"a": 1}, {"a": 1}]}, got)


def test_a_wrong_status_header_or_line_fails_the_step() -> None:
    jsonc = Step("curl ...", "jsonc", '// 201 Created\n{"slug": "acme"}\n')
    assert check(jsonc, Outcome('{"slug": "acme"}', 201)) == []
    assert check(jsonc, Outcome('{"slug": "acme"}', 200)) == ["status 200, the README shows 201"]
    assert check(jsonc, Outcome("<html>", 201)) == ["the answer is not JSON: '<html>'"]

    http = Step("curl -si ...", "http", "HTTP/1.1 201 CREATED\nIdempotent-Replayed: true\n\n{}\n")
    head = "HTTP/1.1 201 CREATED\r\nContent-Type: application/json\r\n"
    replayed = Outcome(
        head + "Idempotent-Replayed: true\r\n\r\n{}", 201, {"idempotent-replayed": "true"}
    )
    assert check(http, replayed) == []
    assert check(http, Outcome(head + "\r\n{}", 201)) == [
        "header idempotent-replayed: None, shown 'true'"
    ]

    text = Step("erp tenants list", "text", "…\tacme\tactive\n")
    assert check(text, Outcome("1b2c\tacme\tactive\n", None)) == []
    assert check(text, Outcome("1b2c\tacme\tsuspended\n", None))
