"""EXPLAIN helpers: the plan text for people, its JSON form for checks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Plan:
    text: str
    nodes: list[dict[str, Any]]

    def index_scans(self) -> list[dict[str, Any]]:
        """Nodes that read an index (Index Scan, Index Only Scan, Bitmap Index Scan)."""
        return [n for n in self.nodes if "Index Name" in n]

    def uses_index_on(self, column: str) -> str | None:
        """The name of an index whose condition names `column`, or None."""
        for node in self.index_scans():
            if column in node.get("Index Cond", ""):
                return str(node["Index Name"])
        return None

    def seq_scans(self) -> list[str]:
        return [str(n.get("Relation Name")) for n in self.nodes if n["Node Type"] == "Seq Scan"]

    def key_lines(self) -> list[str]:
        """The lines naming the index (or the scan) and its condition or filter."""
        keys = (
            "Index Scan",
            "Index Only Scan",
            "Bitmap Heap Scan",
            "Bitmap Index Scan",
            "Seq Scan",
        )
        conds = ("Index Cond:", "Filter:", "Recheck Cond:")
        lines = self.text.splitlines()
        return [ln.strip() for ln in lines if any(k in ln for k in keys + conds)]


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def explain(
    conn: psycopg.Connection[Any],
    query: str,
    params: Sequence[Any] = (),
    options: str = "ANALYZE, BUFFERS",
) -> Plan:
    """EXPLAIN (`options`) of `query` in the connection's current transaction, twice:
    as text and as JSON (the JSON run's nodes are the ones checked).

    Parameters are bound client-side, so the text shows their values.
    """
    cur = psycopg.ClientCursor(conn)
    text_rows = cur.execute(f"EXPLAIN ({options}) {query}", params).fetchall()
    json_row = cur.execute(f"EXPLAIN ({options}, FORMAT JSON) {query}", params).fetchone()
    assert json_row is not None
    doc = json_row[0] if not isinstance(json_row[0], str) else json.loads(json_row[0])
    return Plan("\n".join(r[0] for r in text_rows), list(_walk(doc[0]["Plan"])))


def explain_generic(
    conn: psycopg.Connection[Any],
    query: str,
    params: Sequence[Any],
    options: str = "ANALYZE, BUFFERS",
) -> Plan:
    """The generic plan (the one a prepared statement may settle on after five runs):
    PREPARE with `$n` placeholders, `plan_cache_mode = force_generic_plan`, EXPLAIN EXECUTE.
    Runs in the connection's current transaction; the statement is deallocated."""
    numbered = query
    for i in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${i}", 1)
    conn.execute(f"PREPARE bench_generic AS {numbered}")
    try:
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        placeholders = ", ".join(["%s"] * len(params))
        return explain(conn, f"EXECUTE bench_generic({placeholders})", params, options)
    finally:
        conn.execute("DEALLOCATE bench_generic")
