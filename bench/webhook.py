"""Webhook acknowledgement latency: the receiver against a bare FastAPI endpoint.

Starts, on 127.0.0.1 and over real HTTP, the receiver (``app.main:create_app`` under
uvicorn, a SQLite file in a temporary directory with its durable commit, a real Redis with
a private queue whose keys are deleted afterwards) and a bare FastAPI endpoint that reads
the body and answers 202, each in its own process. It then drives both at fixed rates with
an async httpx client (open loop: request *i* is due at ``i / rate``, and latency counts
from that due time, so a server that falls behind cannot hide it) and prints ack p50/p99,
the throughput achieved, and the receiver/bare p99 ratio.

    .venv/bin/python bench/webhook.py                 # 100, 300, 500 req/s, 4 s each, 3 runs
    .venv/bin/python bench/webhook.py --runs 1 --seconds 2 --rates 500

Bounded: about 30 s per run with the defaults. Needs Redis on PACEKEEPER_REDIS_URL
(default redis://127.0.0.1:6379/9).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    SECRET,
    cleanup_redis,
    cpu_seconds,
    free_port,
    start,
    stop,
    uvicorn,
    wait_ready,
)


def bare_app() -> FastAPI:
    """The baseline: a FastAPI endpoint that reads the body and answers 202."""
    app = FastAPI()

    @app.post("/webhook")
    async def webhook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"signal_id": "x", "status": "received", "duplicate": False}, 202)

    return app


def body(run: str, n: int) -> dict[str, Any]:
    return {
        "secret": SECRET,
        "id": f"bench-{run}-{n}",
        "action": "entry",
        "symbol": "BINANCE:BTCUSDT",
        "side": "buy",
        "quantity": "0.5",
        "execution": {"type": "twap", "duration": "1800", "limit_price": "64000"},
        "take_profit": {"price": "70000"},
        "stop_loss": {"stop_price": "60000", "limit_price": "59900"},
        "ttl": 3600,
        "strategy": "bench",
    }


@dataclass
class Result:
    rate: int
    sent: int
    ok: int
    p50: float
    p99: float
    achieved: float
    cpu_ms: float = 0.0  # the server's CPU time (all threads, user + system) per request


async def drive(url: str, rate: int, seconds: float, tag: str) -> Result:
    """Open-loop load: request i is due at i / rate; latency counts from the due time."""
    total = int(rate * seconds)
    latencies: list[float] = []
    codes: list[int] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def one(n: int, due: float) -> None:
            try:
                response = await client.post("/webhook", json=body(tag, n))
                codes.append(response.status_code)
            except httpx.HTTPError:
                codes.append(0)
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter()
        tasks = []
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    ok = sum(200 <= c < 300 for c in codes)
    return Result(
        rate=rate,
        sent=total,
        ok=ok,
        p50=latencies[len(latencies) // 2] * 1000,
        p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        achieved=ok / elapsed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300, 500])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    redis_url = os.environ.get("PACEKEEPER_REDIS_URL", "redis://127.0.0.1:6379/9")
    queue_name = f"bench-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="pacekeeper-bench-") as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        sys.path.insert(0, str(ROOT))
        from app import migrate

        migrate.upgrade(db_url)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PACEKEEPER_ENV": "dev",
            "PACEKEEPER_DATABASE_URL": db_url,
            "PACEKEEPER_REDIS_URL": redis_url,
            "PACEKEEPER_QUEUE_NAME": queue_name,
            "PACEKEEPER_WEBHOOK_SECRET": SECRET,
            "PACEKEEPER_LOG_LEVEL": "INFO",
            # One sender at hundreds a second: the per-sender limit would measure itself.
            "PACEKEEPER_WEBHOOK_RATE_LIMIT": "0",
            "PACEKEEPER_WEBHOOK_CHECK_SYMBOLS": "false",
        }
        try:
            ports = {"receiver": free_port(), "bare": free_port()}
            procs.append(
                start(
                    uvicorn("app.main:create_app", ports["receiver"]),
                    env,
                    Path(tmp) / "receiver.log",
                )
            )
            procs.append(
                start(uvicorn("bench.webhook:bare_app", ports["bare"]), env, Path(tmp) / "bare.log")
            )
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            pids = {"receiver": procs[0].pid, "bare": procs[1].pid}
            for proc, url in zip(procs, urls.values(), strict=True):
                wait_ready(url + "/webhook", proc)

            results: dict[tuple[str, int], list[Result]] = {}
            for run in range(args.runs):
                for rate in args.rates:
                    for name in ("bare", "receiver"):
                        tag = f"{run}-{rate}-{uuid.uuid4().hex[:6]}"
                        asyncio.run(drive(urls[name], 100, args.warmup, "warm-" + tag))
                        before = cpu_seconds(pids[name])
                        result = asyncio.run(drive(urls[name], rate, args.seconds, tag))
                        result.cpu_ms = (cpu_seconds(pids[name]) - before) * 1000 / result.sent
                        results.setdefault((name, rate), []).append(result)
                        print(
                            f"run {run + 1} {name:8} {rate:4} req/s: p50 {result.p50:6.2f} ms  "
                            f"p99 {result.p99:6.2f} ms  ok {result.ok}/{result.sent}  "
                            f"{result.achieved:6.1f} req/s  server cpu {result.cpu_ms:.2f} ms/req",
                            flush=True,
                        )
        finally:
            stop(procs)
            removed = cleanup_redis(redis_url, queue_name)

    print(
        f"\nmedians of {args.runs} run(s), {args.seconds:g} s per rate; "
        f"{removed} redis keys removed; load average {os.getloadavg()[0]:.2f} "
        f"(at start {load_at_start:.2f}) on {os.cpu_count()} cores"
    )
    print(
        f"{'rate':>6} | {'bare p50':>9} {'bare p99':>9} {'req/s':>7} | "
        f"{'recv p50':>9} {'recv p99':>9} {'req/s':>7} | {'p99 ratio':>9} | server cpu/req"
    )
    for rate in args.rates:
        bare, recv = results[("bare", rate)], results[("receiver", rate)]

        def med(rs: list[Result], attr: str) -> float:
            return statistics.median(getattr(r, attr) for r in rs)

        ratio = med(recv, "p99") / med(bare, "p99")
        columns = [
            f"{med(rs, 'p50'):7.2f}ms {med(rs, 'p99'):7.2f}ms {med(rs, 'achieved'):7.1f}"
            for rs in (bare, recv)
        ]
        cpu = f"{med(bare, 'cpu_ms'):.2f} / {med(recv, 'cpu_ms'):.2f} ms"
        print(f"{rate:>6} | {columns[0]} | {columns[1]} | {ratio:8.2f}x | {cpu}")
        failed = sum(r.sent - r.ok for r in recv + bare)
        if failed:
            print(f"       {failed} request(s) without a 2xx answer at {rate} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
