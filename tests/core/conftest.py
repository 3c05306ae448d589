"""Fixtures of the core tests (`make_app` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rq import Queue

from erp.extensions import queue
from erp.http import ErpFlask
from tests.conftest import AppFactory

__all__ = ["AppFactory"]


@pytest.fixture
def default_queue(app: ErpFlask) -> Iterator[Queue]:
    """This worker's default RQ queue, empty before and after the test."""
    with app.app_context():
        q = queue.queue("default")
        q.empty()
        yield q
        q.empty()
