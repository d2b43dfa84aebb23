"""CPU per webhook request in one process: the receiver against a bare FastAPI endpoint.

bench/webhook.py measures over real HTTP, where a busy machine (or its own load generator)
decides what is seen. This drives both apps in process through httpx's ASGI transport, in
waves of ``--wave`` concurrent requests (so the intake writer batches as under load), with
the receiver's lifespan running (SQLite file with its durable commit, Redis enqueue on a
private queue, JSON logs at INFO to /dev/null), and prints the process CPU time per request
of each. Both figures include the client's share, which is the same for both; their
difference is what the receiver adds. Medians of ``--runs``.

    .venv/bin/python bench/webhook_cpu.py                 # 2000 requests, waves of 10, 3 runs
    .venv/bin/python bench/webhook_cpu.py -n 1000 --wave 1

Bounded: a few seconds per run. Needs Redis on PACEKEEPER_REDIS_URL (default
redis://127.0.0.1:6379/9); deletes the keys it made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import DEFAULT_REDIS_URL, SECRET, cleanup_redis  # noqa: E402
from bench.webhook import bare_app, body  # noqa: E402


async def cpu_per_request(app: Any, requests: int, wave: int, tag: str) -> float:
    """Process CPU milliseconds per request, after a warm-up of 100."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def send(first: int) -> None:
            answers = await asyncio.gather(
                *(client.post("/webhook", json=body(tag, first + i)) for i in range(wave))
            )
            if any(a.status_code != 202 for a in answers):
                raise RuntimeError(f"not accepted: {[a.text for a in answers][:2]}")

        for first in range(0, 100, wave):
            await send(10**6 + first)
        started = time.process_time()
        for first in range(0, requests, wave):
            await send(first)
        return (time.process_time() - started) * 1000 / requests


async def run(settings: Any, requests: int, wave: int, log: Any) -> tuple[float, float]:
    from app.logging import configure_logging
    from app.main import create_app

    app = create_app(settings)
    # create_app installs the handler on stderr; the bench's lines go to ``log`` instead.
    configure_logging(settings, stream=log)
    tag = uuid.uuid4().hex[:6]
    async with app.router.lifespan_context(app):
        receiver = await cpu_per_request(app, requests, wave, f"r-{tag}")
    bare = await cpu_per_request(bare_app(), requests, wave, f"b-{tag}")
    return receiver, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--wave", type=int, default=10, help="concurrent requests")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from app import migrate
    from app.config import Settings
    from app.logging import configure_logging

    redis_url = os.environ.get("PACEKEEPER_REDIS_URL", DEFAULT_REDIS_URL)
    queue = f"bench-cpu-{uuid.uuid4().hex[:8]}"
    figures: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pk-cpu-") as tmp, open(os.devnull, "w") as null:
        database_url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(database_url)
        settings = Settings(
            _env_file=None,
            env="dev",
            database_url=database_url,
            redis_url=redis_url,
            queue_name=queue,
            webhook_secret=SECRET,
            log_level="INFO",
            webhook_rate_limit=0,
            webhook_check_symbols=False,
        )
        configure_logging(settings, stream=null)
        try:
            for n in range(args.runs):
                receiver, bare = asyncio.run(run(settings, args.requests, args.wave, null))
                figures.append((receiver, bare))
                print(f"run {n + 1}: receiver {receiver:.3f} ms/req  bare {bare:.3f} ms/req",
                      flush=True)  # fmt: skip
        finally:
            cleanup_redis(redis_url, queue)
    receiver = statistics.median(f[0] for f in figures)
    bare = statistics.median(f[1] for f in figures)
    print(f"median of {args.runs}: receiver {receiver:.3f} ms/req, bare {bare:.3f} ms/req, "
          f"receiver adds {receiver - bare:.3f} ms ({receiver / bare:.2f}x); load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
