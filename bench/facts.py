"""What a result was measured on: the machine and the versions of everything in the path."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def machine() -> dict[str, Any]:
    mem = _memory_bytes()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "kernel": platform.release(),
        "system": platform.system(),
        "hostname": platform.node(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _libpq(number: int) -> str:
    return f"{number // 10000}.{number % 100}"


def versions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute("SHOW server_version").fetchone()
    return {
        "python": platform.python_version(),
        "postgresql": row[0] if row else None,
        "psycopg": psycopg.__version__,
        "libpq": _libpq(psycopg.pq.version()),
        "sqlalchemy": _dist("sqlalchemy"),
        "flask": _dist("flask"),
        "flask_smorest": _dist("flask-smorest"),
        "gunicorn": _dist("gunicorn"),
    }
