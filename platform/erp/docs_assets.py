"""Swagger UI's files, served by the app itself: no CDN is reachable in many networks."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

blp = Blueprint("docs_assets", __name__, url_prefix="/api/docs/assets")

_ALLOWED = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)


def _static_dir() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


@blp.get("/<name>")
def asset(name: str) -> Response:
    from erp.errors import Problem

    if name not in _ALLOWED:
        raise Problem("not-found")
    return send_from_directory(_static_dir(), name, max_age=86400)
