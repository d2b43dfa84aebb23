"""RQ job functions: each opens its process's resources, calls one service, returns a summary.

Jobs take ids (never payloads) and are JSON-serialized; what they return is JSON too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rq import Queue
from sqlalchemy.engine import Engine

from app.config import get_settings
from app.db import make_engine
from app.queue import connect, make_queue, run_sweep


@lru_cache(maxsize=1)
def _intake_resources() -> tuple[Engine, Queue]:
    """The database engine and queue this worker process reuses from job to job."""
    settings = get_settings()
    if not settings.redis_url:
        raise RuntimeError("PACEKEEPER_REDIS_URL is not set: the sweeper needs Redis")
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
    return engine, make_queue(connect(settings.redis_url), settings.queue_name)


def sweep_intake() -> dict[str, Any]:
    """Periodic: enqueue every signal that never reached the queue, or whose job vanished."""
    engine, queue = _intake_resources()
    return run_sweep(engine, queue).as_dict()
