"""Tiny job functions for worker/cron tests (importable by the worker by dotted path)."""

import redis


def record(redis_url: str, key: str) -> str:
    conn = redis.Redis.from_url(redis_url)
    conn.incr(key)
    conn.expire(key, 60)
    return "ok"
