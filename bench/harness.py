"""What the benches share: processes on 127.0.0.1, the paper exchange noting order arrivals,
percentiles, a process's CPU and memory, and clean-up of the Redis keys a bench made.

Each bench starts the pieces it measures as real processes (uvicorn serving an app factory,
an RQ worker) with an environment of its own, and stops them when done.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret-0123456789abcdef"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"

ORDER_PATHS = (
    "/api/v3/order",
    "/api/v3/orderList/oco",
    "/sapi/v1/algo/spot/newOrderTwap",
    "/sapi/v1/algo/futures/newOrderTwap",
    "/sapi/v1/algo/futures/newOrderVp",
    "/fapi/v1/order",
    "/fapi/v1/algoOrder",
)
ID_FIELDS = ("newClientOrderId", "clientAlgoId", "listClientOrderId")


# ---- the paper exchange with arrival times (runs in its own process) ---------------------


# BENCH_TRACE=<file>: each paper exchange of a bench appends every request it receives
# there (wall time, port, method, path), to see what a signal waits for.
TRACE = os.environ.get("BENCH_TRACE")


class Arrivals:
    """ASGI wrapper: wall time at which each order POST arrived, by its client id.

    ``GET /_bench/arrivals`` answers them as JSON. It wraps the whole app, so a latency fault
    of the paper exchange (``POST /paper/faults``) delays the answer, not the arrival.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: dict[str, float] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        path = scope["path"]
        if TRACE:  # every request: when it arrived, at which exchange (port), what
            with open(TRACE, "a") as fh:
                fh.write(f"{arrived:.3f} {scope['server'][1]} {scope['method']} {path}\n")
        if path == "/_bench/arrivals":
            body = json.dumps(self.seen).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        if scope["method"] != "POST" or path not in ORDER_PATHS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    form = parse_qs(
                        b"".join(chunks).decode() + "&" + scope["query_string"].decode()
                    )
                    for name in ID_FIELDS:
                        if name in form:
                            self.seen.setdefault(form[name][0], arrived)
            return message

        await self.app(scope, recording_receive, send)


def paper_factory() -> Any:
    """The paper exchange (flat prices, no weight limits) behind :class:`Arrivals`."""
    from paper.app import create_app
    from paper.settings import PaperSettings

    settings = PaperSettings(paper_volatility=Decimal(0), paper_rate_limits=False)
    return Arrivals(create_app(settings))


def arrivals(paper_url: str) -> dict[str, float]:
    return dict(httpx.get(f"{paper_url}/_bench/arrivals", timeout=10).json())


# ---- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def uvicorn(target: str, port: int) -> list[str]:
    """Serve the app factory ``target`` (``module:function``) on 127.0.0.1:``port``."""
    return [
        sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until ``url`` answers anything over HTTP (or the process exits: an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# An RQ worker process: `simple` is Pacekeeper's own (worker.main.build_worker, jobs in the
# worker process, resources reused; it reads PACEKEEPER_WORKER_CONCURRENCY where supported),
# `fork` RQ's forking Worker.
WORKER = """
import sys
from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer
from app.config import get_settings
from worker.main import build_worker
settings = get_settings()
redis = Redis.from_url(settings.redis_url)
if sys.argv[1] == "simple":
    worker = build_worker(settings, redis)
else:
    # Fair to the forking worker: the job's modules are imported once, in the parent.
    import app.execution.service, worker.jobs, worker.resources  # noqa: F401, E401
    worker = Worker([settings.queue_name], connection=redis, serializer=JSONSerializer,
                    maintenance_interval=settings.worker_maintenance_interval)
worker.work(logging_level="WARNING")
"""


def worker(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start([sys.executable, "-c", WORKER, kind], env, log)


def pacekeeper_env(
    *, database_url: str, redis_url: str, queue: str, exchange_url: str
) -> dict[str, str]:
    """The environment of a receiver or worker of a bench: its own queue, no sender limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    env.update(
        {
            "PACEKEEPER_ENV": "test",
            "PACEKEEPER_WEBHOOK_SECRET": SECRET,
            "PACEKEEPER_DATABASE_URL": database_url,
            "PACEKEEPER_REDIS_URL": redis_url,
            "PACEKEEPER_QUEUE_NAME": queue,
            "PACEKEEPER_BINANCE_API_URL": exchange_url,
            "PACEKEEPER_BINANCE_FAPI_URL": exchange_url,
            "PACEKEEPER_LOG_LEVEL": "WARNING",
            # One sender driving the receiver: the per-sender limit is not what is measured.
            "PACEKEEPER_WEBHOOK_RATE_LIMIT": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    # Passed through to the workers when set (threads per worker process).
    if "PACEKEEPER_WORKER_CONCURRENCY" in os.environ:
        env["PACEKEEPER_WORKER_CONCURRENCY"] = os.environ["PACEKEEPER_WORKER_CONCURRENCY"]
    return env


# ---- figures -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):6.2f} ms  p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):6.2f}  "
        f"max {max(ms):6.2f}  (n={len(ms)})"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (Linux /proc), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cleanup_redis(redis_url: str, queue: str) -> int:
    """Delete the keys of the bench's own queue (jobs carry it as their origin)."""
    from redis import Redis

    conn = Redis.from_url(redis_url)
    keys = list(conn.scan_iter(match=f"rq:*{queue}*", count=1000))
    keys += [
        key
        for key in conn.scan_iter(match="rq:job:signal-*", count=1000)
        if conn.hget(key, "origin") == queue.encode()
    ]
    keys += list(conn.scan_iter(match=f"pacekeeper:*{queue}*", count=1000))
    if keys:
        conn.delete(*keys)
    conn.srem("rq:queues", f"rq:queue:{queue}")
    conn.close()
    return len(keys)
