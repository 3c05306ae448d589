"""erp/fastpath.py: a registered fast path answers its usual case before Flask and
hands every other request, body intact, to the Flask route; what it keeps of the
request lifecycle (the request id, the body limit) is the same."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask, request

from erp import fastpath
from erp.fastpath import FastAnswer, FastRequest


@pytest.fixture
def served() -> tuple[Any, list[str]]:
    """A Flask app with POST /echo/<n> and a fast path for it: even n answered fast,
    odd n left to Flask, 13 raising in the handler. The list names who answered."""
    app = Flask("fastpath-test")
    app.config["MAX_CONTENT_LENGTH"] = 100
    who: list[str] = []

    @app.post("/echo/<n>")
    def echo(n: str) -> Any:
        who.append("flask")
        return {"n": n, "body": request.get_data(as_text=True)}, 201

    def fast(req: FastRequest) -> FastAnswer | None:
        n = int(req.params["n"])
        if n == 13:
            raise RuntimeError("the handler failed before changing anything")
        if n % 2:
            return None
        who.append("fast")
        body = {"n": str(n), "body": req.body.decode(), "h": req.headers.get("X-Thing")}
        return FastAnswer(202, body, [("X-Extra", "1")])

    fastpath.install(app, [fastpath.compile_path(r"/echo/(?P<n>\d+)", fast)])
    return app.test_client(), who


def test_the_usual_case_is_answered_before_flask(served: tuple[Any, list[str]]) -> None:
    client, who = served
    r = client.post("/echo/2", data=b"hello", headers={"X-Thing": "t", "X-Request-Id": "abc.1"})
    assert r.status_code == 202
    assert r.get_json() == {"n": "2", "body": "hello", "h": "t"}
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Extra"] == "1"
    assert r.headers["X-Request-Id"] == "abc.1"
    assert who == ["fast"]
    # an ill-formed request id is replaced, as erp/http.py does
    r = client.post("/echo/4", data=b"x", headers={"X-Request-Id": "no spaces allowed"})
    assert r.headers["X-Request-Id"] != "no spaces allowed"
    assert len(r.headers["X-Request-Id"]) == 32


@pytest.mark.parametrize(
    ("path", "kw"),
    [
        ("/echo/3", {}),  # the handler says no
        ("/echo/13", {}),  # the handler raised
        ("/echo/2?x=1", {}),  # a query string
        ("/echo/2", {"headers": {"Authorization": "Bearer k"}}),  # a credential
    ],
)
def test_every_other_request_goes_through_flask_with_its_body(
    served: tuple[Any, list[str]], path: str, kw: dict[str, Any]
) -> None:
    client, who = served
    r = client.post(path, data=b"the body", **kw)
    assert r.status_code == 201
    assert r.get_json()["body"] == "the body"
    assert who == ["flask"]


def test_a_body_over_the_limit_or_without_a_length_is_flasks(
    served: tuple[Any, list[str]],
) -> None:
    client, who = served
    assert client.post("/echo/2", data=b"x" * 101).status_code == 413
    chunked = client.post(
        "/echo/2", input_stream=io.BytesIO(b"abcd"), headers={"Transfer-Encoding": "chunked"}
    )
    assert chunked.status_code == 201
    assert who == ["flask", "flask"]
    assert client.get("/echo/2").status_code == 405  # another method: not the fast path
