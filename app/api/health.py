"""``GET /health`` (the process lives) and ``GET /health/ready`` (every component, with figures).

Readiness says whether the deployment can take traffic: its components are reachable and the
monitor is doing its job. It never says how busy the workers are: a readiness that fails
under load gets a healthy stack restarted by its orchestrator, exactly when it is needed
most. So a backlog is a figure (and a metric, ``pacekeeper_queue_*``), never a failure.

The checks run side by side in threads and the answer comes within ``READY_DEADLINE``
seconds whatever is down: a check that has not finished by then is reported as failing.
The components:

- ``database``: ``SELECT 1`` and its latency;
- ``redis``: ``PING`` and its latency;
- ``queue``: jobs waiting and the age of the oldest; a ``backlog`` when the oldest has waited
  over ``QUEUE_BACKLOG_AGE``. Shown, never failing;
- ``workers``: live RQ workers for the queue (RQ's worker registry); failing when none;
- ``monitor``: the monitor's last successful cycle against its interval
  (``app.healthcheck.check_monitor_cycle``); its jobs go to the front of the queue
  (``worker/cron.py``), so a backlog does not make it stale;
- ``exchange``: ``GET /api/v3/time`` answered, the clock offset, the used weight and any ban
  from the shared rate-limit governor; failing when unreachable or banned. When the workers
  have spent the weight budget, the exchange is answering them: it is not asked again (that
  would have to wait) and counts as reachable;
- ``kill_switch``: ``running`` or ``halted`` (with reason and time). A halt is an operator's
  decision, not a fault, so it never fails readiness; it only shows.
- ``protection``: open positions Pacekeeper could not protect (a bracket the exchange refused
  for good, a stop crossed with ``if_crossed: alert``). The stack still takes traffic, so it
  never fails readiness: the answer stays 200 with ``status: degraded`` while one lasts.

This is a whole-system check for operators, monitoring and docker-compose. Do not use it to
gate webhook traffic at a load balancer: the receiver accepts and stores signals while a
worker or the exchange is down, and ``GET /health`` is the check for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from app.config import Settings
from app.controls import current_halt
from app.healthcheck import Check, check_monitor_cycle, check_workers
from app.metrics import queue_figures

router = APIRouter(tags=["operations"])

READY_DEADLINE = 1.5  # seconds for every check together
EXCHANGE_TIMEOUT = 1.0  # seconds for the exchange's answer
QUEUE_BACKLOG_AGE = 120.0  # seconds the oldest waiting job has waited when it is a backlog

# A few threads shared by every readiness request; a check stuck past the deadline keeps its
# thread only until its own socket timeout.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pacekeeper-ready")


@router.get("/health", summary="Liveness: answers while the process lives")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: every component with its figures",
    responses={503: {"description": "At least one component is unhealthy; `failing` names it"}},
)
async def ready(request: Request) -> JSONResponse:
    checks = await anyio.to_thread.run_sync(run_checks, request.app.state)
    failing = [check.name for check in checks if not check.ok]
    degraded = [check.name for check in checks if check.ok and check.figures.get("degraded")]
    body = {
        "status": "unready" if failing else "degraded" if degraded else "ready",
        "failing": failing,
        "degraded": degraded,
        "components": {
            check.name: {"ok": check.ok, "detail": check.detail, "figures": check.figures}
            for check in checks
        },
    }
    return JSONResponse(body, status_code=503 if failing else 200)


def run_checks(state: Any, *, deadline: float = READY_DEADLINE) -> list[Check]:
    """Every readiness check, in parallel; those unfinished after ``deadline`` s fail."""
    settings: Settings = state.settings
    redis = getattr(state, "redis", None)
    checks: dict[str, Callable[[], Check]] = {
        "database": lambda: check_database(getattr(state, "read_engine", state.engine)),
        "redis": lambda: _with_redis(redis, "redis", check_redis),
        "queue": lambda: _with_redis(redis, "queue", lambda r: check_queue(r, settings.queue_name)),
        "workers": lambda: _with_redis(
            redis, "workers", lambda r: check_workers(r, settings.queue_name)
        ),
        "monitor": lambda: _with_redis(
            redis,
            "monitor",
            lambda r: check_monitor_cycle(r, settings.monitor_interval, settings.queue_name),
        ),
        "exchange": lambda: check_exchange(settings, redis),
        "kill_switch": lambda: check_kill_switch(
            getattr(state, "read_sessions", state.session_factory)
        ),
        "protection": lambda: check_protection(
            getattr(state, "read_sessions", state.session_factory)
        ),
    }
    futures = {name: _executor.submit(_guarded, name, check) for name, check in checks.items()}
    wait(futures.values(), timeout=deadline)
    out = []
    for name, future in futures.items():
        if future.done():
            out.append(future.result())
        else:
            out.append(Check(name, False, f"no answer within {deadline:g}s"))
    return out


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:
        return Check(name, False, f"check failed: {type(exc).__name__}: {_short(exc)}")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def _with_redis(redis: Any, name: str, check: Callable[[Any], Check]) -> Check:
    if redis is None:
        return Check(name, False, "PACEKEEPER_REDIS_URL is not set")
    return check(redis)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_database(engine: Any) -> Check:
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    latency = _ms(started)
    return Check("database", True, f"SELECT 1 in {latency} ms", {"latency_ms": latency})


def check_redis(redis: Any) -> Check:
    started = time.perf_counter()
    redis.ping()
    latency = _ms(started)
    return Check("redis", True, f"PING in {latency} ms", {"latency_ms": latency})


def check_queue(redis: Any, queue_name: str) -> Check:
    """The backlog, as figures: busy workers are not a fault, so this never fails."""
    figures = {"queue": queue_name, **queue_figures(redis, queue_name)}
    figures.pop("workers")  # reported by the workers check
    age = figures["oldest_job_age"]
    figures["backlog"] = age is not None and age > QUEUE_BACKLOG_AGE
    detail = f"{figures['depth']} job(s) waiting"
    if age is not None:
        detail += f", the oldest for {age:.1f}s"
    if figures["backlog"]:
        detail = f"backlog: {detail} (the workers are behind; not a failure)"
    return Check("queue", True, detail, figures)


class _WouldWait(Exception):
    """The rate-limit governor asked to wait: a health check never does."""


def _refuse_to_wait(seconds: float) -> None:
    raise _WouldWait(f"the rate-limit governor asked to wait {seconds:.1f}s")


def check_exchange(settings: Settings, redis: Any) -> Check:
    """The exchange answers ``/api/v3/time``: clock offset, used weight, ban."""
    from app.exchange import BinanceClient, ExchangeError
    from app.exchange.ratelimit import RateGovernor, RedisRateStore

    quick = settings.model_copy(update={"exchange_read_retries": 0, "rate_limit_max_wait": 0.0})
    store = RedisRateStore(redis, settings.rate_limit_prefix) if redis is not None else None
    # Every wait the governor would ask for (a spent budget, a Retry-After, a ban) reaches
    # _refuse_to_wait, which raises: a health check never waits.
    governor = RateGovernor(
        store, margin=settings.rate_limit_margin, max_wait=float("inf"), sleep=_refuse_to_wait
    )
    with httpx.Client(timeout=EXCHANGE_TIMEOUT) as http:
        client = BinanceClient(http, quick, governor=governor, sleep=_refuse_to_wait)
        if redis is not None:
            from app.metrics import MetricsRecorder

            client.observer = MetricsRecorder.for_settings(redis, settings).exchange_call
        figures: dict[str, Any] = {"url": settings.binance_api_url}
        try:
            started = time.perf_counter()
            offset = client.clocks["api"].sync()
            figures.update(latency_ms=_ms(started), clock_offset_ms=offset)
            ok, detail = True, f"reachable, clock offset {offset} ms"
        except _WouldWait:
            # The budget is spent or the exchange asked us to slow down: it is answering
            # the workers. Busy, not down (a ban is judged below).
            ok, detail = True, "not asked: the request weight budget is in use (busy, not down)"
            figures["busy"] = True
        except ExchangeError as exc:
            if exc.status == 429:
                ok, detail = True, "answered 429: asked to slow down (busy, not down)"
                figures["busy"] = True
            else:
                ok, detail = False, f"unreachable: {_short(exc)}"
        snapshot = governor.snapshot()
    figures["used_weight"] = {
        bucket: f"{b['used']}/{b['limit']}" for bucket, b in snapshot["buckets"].items()
    }
    if snapshot["banned_for"] > 0:
        figures["banned_for"] = snapshot["banned_for"]
        return Check("exchange", False, f"IP banned for {snapshot['banned_for']:.0f}s", figures)
    return Check("exchange", ok, detail, figures)


def check_kill_switch(session_factory: Any) -> Check:
    """Reported, never failing: a halt is a decision, not a fault."""
    with session_factory() as session:
        halt = current_halt(session)
    if halt is None:
        return Check("kill_switch", True, "running: new entries allowed", {"state": "running"})
    figures = {
        "state": "halted",
        "reason": halt.reason,
        "since": halt.since.isoformat(),
        "by": halt.by,
    }
    return Check(
        "kill_switch", True, f"halted since {halt.since.isoformat()}: {halt.reason}", figures
    )


def check_protection(session_factory: Any) -> Check:
    """Open positions marked unprotected (``app.execution.protection``): degraded, not down."""
    from app.execution.brackets import UNPROTECTED
    from app.models import Position

    with session_factory() as session:
        rows = session.execute(
            select(Position.id, Position.symbol, Position.bracket_note).where(
                Position.status == "open", Position.bracket_note.startswith(UNPROTECTED)
            )
        ).all()
    if not rows:
        return Check("protection", True, "every open position is protected", {"degraded": False})
    figures = {
        "degraded": True,
        "unprotected": [
            {"position": r.id, "symbol": r.symbol, "note": r.bracket_note} for r in rows
        ],
    }
    return Check("protection", True, f"{len(rows)} open position(s) unprotected", figures)
