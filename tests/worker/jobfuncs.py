"""Tiny job functions for worker/cron tests (importable by the worker by dotted path)."""

import redis

# Only a safety net for a test run killed before its clean-up: no test waits anywhere near it.
SAFETY_TTL = 24 * 3600


def record(redis_url: str, key: str) -> str:
    conn = redis.Redis.from_url(redis_url)
    try:
        conn.incr(key)
        conn.expire(key, SAFETY_TTL)
    finally:
        conn.close()
    return "ok"


def hold(redis_url: str, key: str, release: str) -> str:
    """Mark ``key`` as started, then wait (bounded) until the file ``release`` exists."""
    import os
    import time

    redis.Redis.from_url(redis_url).set(key, "started", ex=60)
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


def touch_database(redis_url: str, key: str) -> str:
    """A query through the worker's own engine, then count the run in Redis."""
    from sqlalchemy import text

    from worker.resources import resources

    with resources().engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    record(redis_url, key)
    return "ok"
