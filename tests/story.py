"""The README's worked example as runnable steps, and the comparison of each answer.

A step is a fenced ```sh block whose first line is `# story`; the fenced block right
after it (```jsonc, ```http or ```text) is the answer the README shows. All steps run
in order in one bash process (so the variables they set carry over), as written:
the only instrument is a `curl` shell function that adds `-D <file>`, so the status
and headers of each step's last response are known without changing its output.

Answers are abbreviated. In JSON, the string "…" matches any value, "abc…" any
string starting with "abc"; an object matches if every key shown matches (others
may be left out); a list matches if every item shown matches a distinct item of
the actual list, in any order. A ```jsonc answer starts with `// <status> <reason>`;
an ```http answer starts with the status line and the headers it shows. In a
```text answer, each line (with "…" matching anything) must match a line printed.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "# story"
ELLIPSIS = "…"
ANSWER_KINDS = ("jsonc", "http", "text")


@dataclass
class Step:
    code: str
    kind: str | None = None  # None: the step shows no answer
    answer: str = ""


@dataclass
class Outcome:
    output: str
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        if info is None and line.startswith("```"):
            info, body = line[3:].strip(), []
        elif info is not None and line.strip() == "```":
            blocks.append((info, "\n".join(body) + "\n"))
            info = None
        elif info is not None:
            body.append(line)
    assert info is None, "an unclosed fenced block"
    return blocks


def story_steps(markdown: str) -> list[Step]:
    blocks = fenced_blocks(markdown)
    steps = []
    for i, (info, body) in enumerate(blocks):
        if info == "sh" and body.splitlines()[0].strip() == MARKER:
            step = Step(body)
            if i + 1 < len(blocks) and blocks[i + 1][0] in ANSWER_KINDS:
                step.kind, step.answer = blocks[i + 1]
            steps.append(step)
    return steps


def run(steps: list[Step], cwd: Path, env: dict[str, str], work: Path) -> list[Outcome]:
    """Run the steps in one bash; stops at the first failing command (set -e)."""
    script = [
        "set -eo pipefail",
        f'curl() {{ command curl -D "{work}/headers" "$@"; }}',
    ]
    for i, step in enumerate(steps):
        script += [
            f'rm -f "{work}/headers"',
            "{",
            step.code,
            f'}} >"{work}/{i}.out" 2>"{work}/{i}.err"',
            f'if [ -f "{work}/headers" ]; then mv "{work}/headers" "{work}/{i}.headers"; fi',
            f'echo "step {i} done"',
        ]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes = []
    for i in range(len(steps)):
        out, err = work / f"{i}.out", work / f"{i}.err"
        if not out.exists():
            break
        outcomes.append(_outcome(out.read_text() + err.read_text(), work / f"{i}.headers"))
    assert done.returncode == 0, (
        f"the story stopped at step {len(outcomes) - 1}:\n"
        f"{steps[len(outcomes) - 1].code}\n--- its output:\n{outcomes[-1].output}\n"
        f"--- bash: {done.stdout}{done.stderr}"
    )
    return outcomes


def _outcome(output: str, headers_file: Path) -> Outcome:
    if not headers_file.exists():
        return Outcome(output, None)
    status, headers = _parse_head(headers_file.read_text())
    return Outcome(output, status, headers)


def _parse_head(text: str) -> tuple[int, dict[str, str]]:
    """Status and headers of the last response in a header dump (or an http answer)."""
    head = text.replace("\r\n", "\n").strip().split("\n\n")[-1]
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def check(step: Step, got: Outcome) -> list[str]:
    """What in `got` differs from the answer the README shows (empty: it matches)."""
    if step.kind is None:
        return []
    if step.kind == "text":
        lines = got.output.splitlines()
        return [
            f"no printed line matches {want!r}"
            for want in step.answer.splitlines()
            if want.strip() and not any(_text_pattern(want).fullmatch(x) for x in lines)
        ]
    if step.kind == "jsonc":
        first, _, body = step.answer.partition("\n")
        m = re.fullmatch(r"//\s*(\d{3})\b.*", first.strip())
        assert m, f"a jsonc answer starts with `// <status>`: {first!r}"
        want_status, want_headers, want_body = int(m.group(1)), {}, body
        got_body = got.output
    else:  # http: the README shows the status line, some headers, a blank line, the body
        head, _, want_body = step.answer.partition("\n\n")
        want_status, want_headers = _parse_head(head)
        got_body = got.output.replace("\r\n", "\n").split("\n\n", 1)[-1]
    problems = []
    if got.status != want_status:
        problems.append(f"status {got.status}, the README shows {want_status}")
    for name, value in want_headers.items():
        if got.headers.get(name) != value:
            problems.append(f"header {name}: {got.headers.get(name)!r}, shown {value!r}")
    try:
        actual = json.loads(got_body)
    except ValueError:
        return [*problems, f"the answer is not JSON: {got_body[:500]!r}"]
    return problems + mismatches(json.loads(want_body), actual)


def _text_pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split(ELLIPSIS)))


def mismatches(want: Any, got: Any, path: str = "$") -> list[str]:
    """Where `got` fails the abbreviated `want` (see the module docstring)."""
    if isinstance(want, str) and want.endswith(ELLIPSIS):
        prefix = want[: -len(ELLIPSIS)]
        ok = prefix == "" or (isinstance(got, str) and got.startswith(prefix))
        return [] if ok else [f"{path}: {got!r} does not start with {prefix!r}"]
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        out = []
        for key, value in want.items():
            if key not in got:
                out.append(f"{path}.{key}: missing")
            else:
                out += mismatches(value, got[key], f"{path}.{key}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: {got!r} is not a list"]
        unused = list(range(len(got)))
        out = []
        for i, item in enumerate(want):
            hit = next((j for j in unused if not mismatches(item, got[j])), None)
            if hit is None:
                out.append(f"{path}[{i}]: no item matches {item!r}")
            else:
                unused.remove(hit)
        return out
    # bool is an int in Python: compare types too, so 1 never passes for true
    if type(want) is not type(got) or want != got:
        return [f"{path}: {got!r}, the README shows {want!r}"]
    return []
