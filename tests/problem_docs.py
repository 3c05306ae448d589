"""docs/problems.md, read as data: the table of problem types the API documents."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "problems.md"
HEADER = ["slug", "status", "title"]
_ROW = re.compile(r"^\|\s*`([a-z0-9-]+)`\s*\|\s*(\d{3})\s*\|\s*(.+?)\s*\|$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def documented_problems(text: str | None = None) -> dict[str, tuple[str, int]]:
    """slug -> (title, status), from the one table whose header is | slug | status | title |.

    Strict on purpose: a row in that table that does not parse, or a slug listed twice,
    is an error rather than a row silently skipped (which would pass as "undocumented").
    """
    lines = (DOC.read_text() if text is None else text).splitlines()
    starts = [i for i, line in enumerate(lines) if _cells(line) == HEADER]
    if len(starts) != 1:
        raise ValueError(f"{DOC.name}: expected one table headed {HEADER}, found {len(starts)}")
    found: dict[str, tuple[str, int]] = {}
    for line in lines[starts[0] + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        match = _ROW.match(line.strip())
        if match is None:
            raise ValueError(f"{DOC.name}: a row of the problem table does not parse: {line!r}")
        slug, status, title = match.group(1), int(match.group(2)), match.group(3)
        if slug in found:
            raise ValueError(f"{DOC.name}: {slug} is listed twice")
        found[slug] = (title, status)
    return found
