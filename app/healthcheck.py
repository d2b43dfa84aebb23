"""Container health checks: ``python -m app.healthcheck [api|worker|monitor|paper]``.

Exit status 0 when healthy, 1 when not, with one line saying why. The Dockerfile's
``HEALTHCHECK`` runs it with no role: the role is then read from the container's main
command (``pacekeeper worker`` -> ``worker``), so one image checks the right thing in
every service. docker-compose names the role explicitly.

- ``api``: ``GET /health`` (liveness) or, with ``--ready``, ``GET /health/ready``.
- ``paper``: ``GET /api/v3/time`` on the paper exchange.
- ``worker``: an RQ worker on this host is registered for ``PACEKEEPER_QUEUE_NAME`` and
  its registration has not expired (RQ's worker registry).
- ``monitor``: a cron scheduler on this host has sent a heartbeat to RQ's cron scheduler
  registry, and the monitor's last successful cycle is recent. The monitor job records
  that cycle with :func:`record_monitor_cycle` under :data:`MONITOR_HEARTBEAT_KEY`.

The ``check_*`` functions return a :class:`Check` and are reused by ``/health/ready``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis import Redis, RedisError

from app.config import Settings, get_settings

# Written by the monitor job after every successful cycle, as MONITOR_HEARTBEAT_KEY:<queue>:
# Unix time in seconds, as a decimal string ("1732190000.123"), no expiry. Read by this
# module, /health/ready and /metrics.
MONITOR_HEARTBEAT_KEY = "pacekeeper:monitor:last_cycle"

# The monitor counts as stale after this many intervals without a successful cycle
# (and never sooner than MONITOR_MIN_STALE_SECONDS, so a 1 s interval is not flapping).
MONITOR_STALE_INTERVALS = 3
MONITOR_MIN_STALE_SECONDS = 30.0

# RQ's cron scheduler heartbeats at least every 60 s and is pruned after 120 s.
CRON_SCHEDULER_REGISTRY = "rq:cron_schedulers"
CRON_SCHEDULER_STALE_SECONDS = 120.0

ROLES = ("api", "worker", "monitor", "paper")
HTTP_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """The state of one component: healthy or not, why, and its figures."""

    name: str
    ok: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def monitor_heartbeat_key(queue_name: str) -> str:
    """The Redis key holding the time of the last successful cycle of this deployment."""
    return f"{MONITOR_HEARTBEAT_KEY}:{queue_name}"


def record_monitor_cycle(connection: Redis, queue_name: str, *, now: float | None = None) -> None:
    """Record a successful monitor cycle (called by the monitor job when a cycle ends)."""
    stamp = f"{time.time() if now is None else now:.3f}"
    connection.set(monitor_heartbeat_key(queue_name), stamp)


def monitor_stale_after(interval: float) -> float:
    """Seconds without a successful cycle after which the monitor is unhealthy."""
    return max(MONITOR_STALE_INTERVALS * interval, MONITOR_MIN_STALE_SECONDS)


def check_monitor_cycle(
    connection: Redis, interval: float, queue_name: str, *, now: float | None = None
) -> Check:
    """Is the monitor's last successful cycle recent enough for its interval?"""
    now = time.time() if now is None else now
    stale_after = monitor_stale_after(interval)
    figures: dict[str, Any] = {"interval": interval, "stale_after": stale_after}
    key = monitor_heartbeat_key(queue_name)
    raw = connection.get(key)
    if raw is None:
        return Check("monitor", False, "no monitor cycle recorded yet", figures)
    try:
        last = float(raw)
    except ValueError:
        return Check("monitor", False, f"{key} is not a timestamp", figures)
    age = max(0.0, now - last)
    figures.update(last_cycle=last, last_cycle_age=round(age, 3))
    if age > stale_after:
        return Check(
            "monitor",
            False,
            f"last successful cycle {age:.0f}s ago (stale after {stale_after:.0f}s)",
            figures,
        )
    return Check("monitor", True, f"last successful cycle {age:.1f}s ago", figures)


def check_cron_scheduler(
    connection: Redis, *, hostname: str | None = None, now: float | None = None
) -> Check:
    """Is an rq cron scheduler (``pacekeeper monitor``) alive, on this host if given?"""
    now = time.time() if now is None else now
    entries: list[tuple[bytes | str, float]] = connection.zrange(  # type: ignore[assignment]
        CRON_SCHEDULER_REGISTRY, 0, -1, withscores=True
    )
    live = [
        name.decode() if isinstance(name, bytes) else name
        for name, score in entries
        if now - float(score) <= CRON_SCHEDULER_STALE_SECONDS
    ]
    if hostname is not None:
        # RQ names a scheduler "<hostname>:<pid>:<suffix>".
        live = [name for name in live if name.rsplit(":", 2)[0] == hostname]
    where = f" on {hostname}" if hostname else ""
    if not live:
        return Check("cron", False, f"no live cron scheduler{where}", {"live": 0})
    return Check("cron", True, f"{len(live)} live cron scheduler(s){where}", {"live": len(live)})


def check_workers(connection: Redis, queue_name: str, *, hostname: str | None = None) -> Check:
    """Live RQ workers listening to ``queue_name`` (on this host if given)."""
    from rq import Queue, Worker

    workers = Worker.all(queue=Queue(queue_name, connection=connection))
    if hostname is not None:
        workers = [w for w in workers if w.hostname == hostname]
    where = f" on {hostname}" if hostname else ""
    figures = {"live": len(workers), "queue": queue_name}
    if not workers:
        return Check("workers", False, f"no live worker for queue {queue_name!r}{where}", figures)
    return Check("workers", True, f"{len(workers)} live worker(s){where}", figures)


def check_http(name: str, url: str, *, timeout: float = HTTP_TIMEOUT) -> Check:
    """A GET that must answer 2xx."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Check(name, False, f"{url} unreachable: {type(exc).__name__}")
    figures = {"status": response.status_code}
    if response.is_success:
        return Check(name, True, f"{url} answered {response.status_code}", figures)
    body = response.text[:300].replace("\n", " ")
    return Check(name, False, f"{url} answered {response.status_code}: {body}", figures)


def role_from_cmdline(argv: Sequence[str]) -> str | None:
    """The pacekeeper sub-command in a process's command line (``pacekeeper worker`` ...)."""
    for index, arg in enumerate(argv):
        name = Path(arg).name
        if name == "pacekeeper" or (name == "app.cli" and index and argv[index - 1] == "-m"):
            rest = argv[index + 1 :]
            return rest[0] if rest and rest[0] in ROLES else None
    return None


def _container_role() -> str | None:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return None
    return role_from_cmdline([part.decode(errors="replace") for part in raw.split(b"\0") if part])


def _redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RedisError("PACEKEEPER_REDIS_URL is not set")
    return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)


def run_check(role: str, settings: Settings, args: argparse.Namespace) -> list[Check]:
    """The checks for one role."""
    if role == "api":
        base = args.url or f"http://127.0.0.1:{settings.api_port}"
        return [
            check_http("api", base.rstrip("/") + ("/health/ready" if args.ready else "/health"))
        ]
    if role == "paper":
        base = args.url or f"http://127.0.0.1:{settings.paper_port}"
        return [check_http("paper", base.rstrip("/") + "/api/v3/time")]
    hostname = None if args.any_host else socket.gethostname()
    try:
        connection = _redis(settings)
        try:
            if role == "worker":
                return [check_workers(connection, settings.queue_name, hostname=hostname)]
            return [
                check_cron_scheduler(connection, hostname=hostname),
                check_monitor_cycle(connection, settings.monitor_interval, settings.queue_name),
            ]
        finally:
            connection.close()
    except RedisError as exc:
        return [Check("redis", False, f"unreachable: {exc}")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.healthcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "role",
        nargs="?",
        choices=(*ROLES, "auto"),
        default="auto",
        help="what to check (default: the role of this container's main command, else api)",
    )
    parser.add_argument("--url", help="base URL for api / paper (default: 127.0.0.1 and the port)")
    parser.add_argument("--ready", action="store_true", help="api: check /health/ready")
    parser.add_argument(
        "--any-host", action="store_true", help="worker / monitor: accept one on any host"
    )
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    role = args.role if args.role != "auto" else (_container_role() or "api")
    checks = run_check(role, settings or get_settings(), args)
    for check in checks:
        print(check.line())
    return 0 if all(check.ok for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
