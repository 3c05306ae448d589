"""`python -m bench.rls_ceiling serve --host H --port P --workers N [--threads T]`: the
API as `erp serve` runs it, but logged in as a BYPASSRLS role with every tenant query
filtering by the tenant itself (Settings.bench_rls_ceiling): the ceiling that
bench/scenarios/rls_request.py measures RLS against.

Bench only: `erp serve` and `erp worker` refuse a BYPASSRLS login, and no
environment variable turns the setting on; this module is the one place that does.
"""

from __future__ import annotations

import argparse
from typing import Any


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rls_ceiling")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default=None)
    args = parser.parse_args(argv)

    from erp.config import Settings
    from erp.server import run_gunicorn

    settings = Settings.from_env().replace(bench_rls_ceiling=True)
    settings.require_secret_key()

    def app() -> Any:
        from erp import create_app

        return create_app(settings)

    run_gunicorn(args.host, args.port, args.workers, args.threads, args.worker_class, app)


if __name__ == "__main__":
    main()
