"""Process-wide extensions; `create_app` configures them. No I/O happens here.

The flask-smorest `Api` is made per app (its spec belongs to one app).
"""

from __future__ import annotations

from typing import Any

import flask
import marshmallow as ma
from flask_smorest import Api as _SmorestApi
from flask_smorest import Blueprint as _SmorestBlueprint
from webargs.core import _UNKNOWN_DEFAULT_PARAM, missing
from webargs.flaskparser import FlaskParser, is_json_request

from erp.db import db
from erp.fields import FastLoad
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

    def parse(self, argmap: Any, req: Any = None, **kwargs: Any) -> Any:
        """A hot command's body (a FastLoad schema, from JSON, nothing else asked):
        loaded straight from the edge's parse, past webargs' location machinery; on
        any doubt (FastLoad.try_fast says None), webargs' own path, which also
        reports the errors."""
        if (
            isinstance(argmap, FastLoad)
            and kwargs.get("location") == "json"
            and kwargs.get("validate") is None
            and kwargs.get("unknown", _UNKNOWN_DEFAULT_PARAM) in (_UNKNOWN_DEFAULT_PARAM, ma.RAISE)
            and self.unknown == ma.RAISE
        ):
            raw = self._raw_load_json(req if req is not None else flask.request)
            loaded = argmap.try_fast(raw)
            if loaded is not None:
                return loaded
        return super().parse(argmap, req, **kwargs)


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
