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
