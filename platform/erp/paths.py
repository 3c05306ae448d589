"""Where the repository's data directories are (override with ERP_ROOT in an image)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("ERP_ROOT", Path(__file__).resolve().parents[2]))
POLICIES = ROOT / "policies"
MIGRATIONS = ROOT / "migrations"
TEMPLATES = Path(os.environ.get("ERP_TEMPLATES_DIR", ROOT / "tenants" / "templates"))
