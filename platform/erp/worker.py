"""`erp worker`: an RQ worker on every queue, JSON serializer, scheduler on."""

from __future__ import annotations

from rq import Worker
from rq.serializers import JSONSerializer

from erp.config import Settings
from erp.db import assert_unprivileged, make_engine
from erp.extensions import db, queue
from erp.logs import configure_logging


def run_worker(settings: Settings, burst: bool = False) -> bool:
    configure_logging(settings.log_level, settings.log_json)
    probe = make_engine(settings, pool_size=1, max_overflow=0)
    try:  # refuse before this login becomes the process's database
        assert_unprivileged(probe)
    finally:
        probe.dispose()
    db.configure(settings)  # the work horses connect lazily, after the fork
    queue.configure(settings.redis_url, settings.queue_prefix)
    worker = Worker(queue.queues(), connection=queue.redis, serializer=JSONSerializer)
    return bool(worker.work(with_scheduler=True, burst=burst))
