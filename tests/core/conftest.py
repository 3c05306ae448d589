"""Fixtures of the core tests: extra apps with changed settings (each with its own engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rq import Queue

from erp import create_app
from erp.config import Settings
from erp.extensions import db, queue
from erp.http import ErpFlask

AppFactory = Callable[..., ErpFlask]


@pytest.fixture
def make_app(app: ErpFlask, settings: Settings) -> Iterator[AppFactory]:
    """`make_app(**setting_changes)`: a separate app; the session `app` stays untouched."""
    made: list[ErpFlask] = []

    def factory(**changes: Any) -> ErpFlask:
        new = create_app(settings.replace(**changes) if changes else settings)
        new.config["TESTING"] = True
        made.append(new)
        return new

    yield factory
    for extra in made:
        with extra.app_context():
            db.dispose()
            queue.redis.close()


@pytest.fixture
def default_queue(app: ErpFlask) -> Iterator[Queue]:
    """This worker's default RQ queue, empty before and after the test."""
    with app.app_context():
        q = queue.queue("default")
        q.empty()
        yield q
        q.empty()
