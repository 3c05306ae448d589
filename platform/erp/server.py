"""Run the API under gunicorn, in-process (`erp serve`, `erp stream`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], app: Callable[[], Any] | None = None) -> None:
        self.options = options
        self.app = app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.app is not None:
            return self.app()
        from erp.wsgi import app

        return app


#: Threads of an `erp stream` worker never given to streams: /healthz and /readyz stay
#: answered when every stream slot is taken.
STREAM_RESERVED_THREADS = 4


def stream_app(threads: int) -> Any:
    """The app as `erp stream` serves it: up to `threads` minus a few streams a worker."""
    from erp import create_app

    return create_app(STREAM_MAX_CLIENTS=threads - STREAM_RESERVED_THREADS)


def run_gunicorn(
    host: str,
    port: int,
    workers: int,
    threads: int,
    worker_class: str | None = None,
    app: Callable[[], Any] | None = None,
) -> None:
    """gunicorn in this process. gthread keeps connections alive between requests;
    sync closes each after its one request (bench/README.md compares the two).
    `app` builds the WSGI app in each worker (default: `erp.wsgi`, from the environment).
    """
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": worker_class or ("gthread" if threads > 1 else "sync"),
            "accesslog": None,
            "timeout": 60,
            "graceful_timeout": 20,
            "preload_app": False,
        },
        app,
    ).run()
