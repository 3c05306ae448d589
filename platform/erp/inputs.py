"""Bad input refused once, at the edge, before a view, a schema or the database sees it.

Some input survives marshmallow but breaks what comes after it: a NUL character
(PostgreSQL text cannot hold one), a lone UTF-16 surrogate (it cannot be encoded
as UTF-8 for the driver), bytes that are not UTF-8 (Werkzeug quietly turns them
into U+FFFD in paths and query strings), JSON nested past what the parser's
recursion allows, integers past Python's 4,300-digit conversion limit, and
floats such as `1e999` (infinity, which no JSON or jsonb can hold). Each is
refused here, for every route of every domain, as a 422 `validation` naming the
field (`errors` keyed by dotted path, query parameter or path parameter), or a
400 `malformed-request` when the body is not JSON at all. docs/problems.md lists
the limits.

The body is parsed once, here; webargs reads that parse (`json_body`), so no
later code parses the raw bytes with a laxer parser.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import request

from erp.errors import Problem

#: Objects and arrays may nest this deep (the body itself is level 1).
MAX_DEPTH = 32
#: A JSON number literal may be this long. Amounts are int64 (at most 20 characters);
#: metadata numbers get room to spare, far below Python's 4,300-digit limit.
MAX_NUMBER_CHARS = 100

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_NOT_UTF8 = "Is not valid UTF-8."
_NUL = "Contains a NUL character."
_SURROGATE = "Contains an unpaired UTF-16 surrogate."
_NESTED = f"Is nested deeper than {MAX_DEPTH} levels."
_UNSET = object()
_ENVIRON_KEY = "erp.json_body"


class _BadNumber:
    """Stands in for a number the parser met but the API refuses, so the walk can name it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parse_int(literal: str) -> int | _BadNumber:
    if len(literal) > MAX_NUMBER_CHARS:
        return _BadNumber(f"Is a number longer than {MAX_NUMBER_CHARS} characters.")
    return int(literal)


def _parse_float(literal: str) -> float | _BadNumber:
    if len(literal) > MAX_NUMBER_CHARS:
        return _BadNumber(f"Is a number longer than {MAX_NUMBER_CHARS} characters.")
    value = float(literal)
    return value if math.isfinite(value) else _BadNumber("Is a number out of range.")


def _parse_constant(literal: str) -> _BadNumber:
    # Python accepts NaN and Infinity; JSON (and jsonb) do not.
    return _BadNumber(f"{literal} is not a JSON number.")


def _label(text: str) -> str:
    """A field name safe to echo back in the problem (its own bad characters replaced)."""
    return _BAD_CHAR.sub("\ufffd", text)


def _string_problem(text: str, lossy: bool) -> str | None:
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return _NUL
    # Bytes that were not UTF-8 were decoded as U+DC80..U+DCFF ("surrogateescape").
    return _NOT_UTF8 if lossy and "\udc80" <= char <= "\udcff" else _SURROGATE


def _walk(value: Any, path: str, depth: int, lossy: bool, errors: dict[str, list[str]]) -> None:
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        errors[path or "_schema"] = [_NESTED]
        return
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_label(key)}" if path else _label(key)
            problem = _string_problem(key, lossy)
            if problem is not None:
                errors[where] = [problem]
            else:
                _walk(item, where, depth + 1, lossy, errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{path}.{i}" if path else str(i), depth + 1, lossy, errors)
    elif isinstance(value, str):
        problem = _string_problem(value, lossy)
        if problem is not None:
            errors[path or "_schema"] = [problem]
    elif isinstance(value, _BadNumber):
        errors[path or "_schema"] = [value.message]


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or a Problem: 400 if it is not JSON, 422 naming each bad value."""
    lossy = False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Keep the bad bytes as U+DC80..U+DCFF so the walk can say which field held them.
        text, lossy = raw.decode("utf-8", "surrogateescape"), True
    try:
        refused: list[_BadNumber] = []

        def counted(parse: Callable[[str], Any]) -> Callable[[str], Any]:
            def hook(literal: str) -> Any:
                number = parse(literal)
                if type(number) is _BadNumber:
                    refused.append(number)
                return number

            return hook

        value = json.loads(
            text,
            parse_int=counted(_parse_int),
            parse_float=counted(_parse_float),
            parse_constant=counted(_parse_constant),
        )
    except RecursionError:
        raise Problem(
            "validation",
            f"The body is nested deeper than {MAX_DEPTH} levels.",
            errors={"_schema": [_NESTED]},
        ) from None
    except ValueError:
        raise Problem("malformed-request", "The request body is not valid JSON.") from None
    # Nothing to find: strict UTF-8 holds no surrogates, JSON no raw NUL in a string, so
    # only a \u escape could smuggle either in; fewer brackets than MAX_DEPTH cannot nest
    # deeper; the parser counted the refused numbers. Then the walk has nothing to do.
    nesting = text.count("{") + text.count("[")
    if not (lossy or refused) and "\\u" not in text and nesting <= MAX_DEPTH:
        return value
    errors: dict[str, list[str]] = {}
    _walk(value, "", 1, lossy, errors)
    if errors:
        raise _invalid(errors)
    return value


def _invalid(errors: dict[str, list[str]]) -> Problem:
    return Problem(
        "validation", "The request failed validation: " + ", ".join(sorted(errors)), errors=errors
    )


def _text_problem(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _NOT_UTF8
    return _NUL if "\x00" in text else None


def query_errors(query_string: bytes) -> dict[str, list[str]]:
    """Each query parameter whose name or value is not clean UTF-8 text.

    Werkzeug decodes the query string with errors="replace", so the raw bytes are the
    only place a bad byte (or a UTF-8-encoded surrogate, %ED%A0%80) can still be seen.
    """
    errors: dict[str, list[str]] = {}
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" "))
        value = unquote_to_bytes(raw_value.replace(b"+", b" "))
        problem = _text_problem(name) or _text_problem(value)
        if problem is not None:
            errors[_label(name.decode("utf-8", "replace"))] = [problem]
    return errors


def path_errors(path_info: str, view_args: dict[str, Any]) -> dict[str, list[str]]:
    """Each path parameter holding a NUL or bytes that were not UTF-8.

    PATH_INFO is the raw bytes as latin-1 (PEP 3333); Werkzeug's view args are those
    bytes decoded with errors="replace", so a bad byte shows as U+FFFD in its parameter.
    """
    try:
        path_info.encode("latin-1").decode("utf-8")
        lossy = False
    except (UnicodeEncodeError, UnicodeDecodeError):
        lossy = True
    errors: dict[str, list[str]] = {}
    for name, value in view_args.items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            errors[name] = [_NUL]
        elif lossy and "\ufffd" in value:
            errors[name] = [_NOT_UTF8]
        elif _BAD_CHAR.search(value):
            errors[name] = [_SURROGATE]
    return errors


def json_body() -> Any:
    """The request's JSON body, parsed and checked once per request.

    Kept in the WSGI environ, which belongs to this request alone (`g` belongs to the
    app context, which several requests share when a caller holds one open)."""
    wsgi = request.environ
    cached = wsgi.get(_ENVIRON_KEY, _UNSET)
    if cached is _UNSET:
        cached = wsgi[_ENVIRON_KEY] = parse_json(request.get_data(cache=True))
    return cached


#: The sales channels' intake (API.md, Sales channels: /hooks/v1): a shop's message is
#: taken as sent, any content type, no field checks (any channel id it cannot verify is
#: 401, and a verified body is stored as received, whatever it holds).
RAW_INTAKE_PREFIX = "/hooks/"


def is_raw_intake() -> bool:
    """Whether this request is a shop's message, exempt from the JSON input checks."""
    return request.path.startswith(RAW_INTAKE_PREFIX)


def check_request() -> None:
    """before_request: refuse bad path parameters, query parameters and JSON bodies."""
    if request.routing_exception is not None:
        return  # 404/405 follows; there is no field to name
    if is_raw_intake():
        return
    wsgi = request.environ
    errors = path_errors(wsgi.get("PATH_INFO", ""), request.view_args or {})
    errors.update(query_errors(request.query_string))
    if errors:
        raise _invalid(errors)
    if (
        request.method in _BODY_METHODS
        and request.mimetype == "application/json"
        and request.get_data(cache=True)
    ):
        json_body()
