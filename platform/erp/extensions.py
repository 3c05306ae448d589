"""Process-wide extensions; `create_app` configures them. No I/O happens here.

The flask-smorest `Api` is made per app (its spec belongs to one app).
"""

from __future__ import annotations

from typing import Any

import flask
import marshmallow as ma
from flask_smorest import Api as _SmorestApi
from flask_smorest import Blueprint as _SmorestBlueprint
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from erp.db import db
from erp.jobs import queue

__all__ = ["Api", "Blueprint", "db", "queue"]


class Api(_SmorestApi):  # type: ignore[misc]
    """flask-smorest's Api with our problem+json handlers instead of its own."""

    def _register_error_handlers(self) -> None:
        """Errors are handled by erp.errors.register_error_handlers."""


class _Parser(FlaskParser):
    """webargs reading the body the edge already parsed and checked (erp/inputs.py)."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        from erp.inputs import json_body

        if not is_json_request(req) or not req.get_data(cache=True):
            return missing  # no body: the schema's defaults apply (an action without one)
        return json_body()


class Blueprint(_SmorestBlueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint, refusing unknown query parameters too (422), so a
    typo such as `?acount_id=` never silently widens a list."""

    ARGUMENTS_PARSER = _Parser(unknown=ma.RAISE)

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, with the schema made once: given a class, webargs would
        build an instance per request (a measurable share of a posting's CPU)."""
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)
