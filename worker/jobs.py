"""RQ job functions: each opens its process's resources, calls one service, returns a summary.

Jobs take ids (never payloads) and are JSON-serialized; what they return is JSON too.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from functools import lru_cache
from typing import Any

from rq import Queue, Retry
from sqlalchemy.engine import Engine

from app.config import Settings, get_settings
from app.db import make_engine
from app.queue import connect, make_queue
from app.signals.sweeper import run_sweep

# RQ's own cap on re-runs of one job; the signal's attempt limit ends it sooner.
EXECUTION_RETRIES = 100

# What the jobs below import on first use, imported by :func:`preload` when a worker
# starts: otherwise the first jobs of a burst spend their first second importing (and
# waiting for one another's import locks) instead of placing orders. The jobs keep their
# own imports: they run the same in a process that did not preload (tests, other workers).
JOB_MODULES = (
    "app.api.health",
    "app.exchange.client",
    "app.exchange.errors",
    "app.execution.quality",
    "app.execution.service",
    "app.keyguard",
    "app.models",
    "app.monitoring.reconcile",
    "app.monitoring.service",
    "app.notify.components",
    "app.notify.service",
    "app.signals.refusals",
    "worker.resources",
)


def preload(settings: Settings) -> None:
    """Import what the jobs use (:data:`JOB_MODULES`); Apprise too when notifications have
    somewhere to go (it is only imported to send one)."""
    for name in JOB_MODULES:
        importlib.import_module(name)
    if settings.notify_url_list():
        importlib.import_module("apprise")


@lru_cache(maxsize=1)
def _intake_resources() -> tuple[Engine, Queue]:
    """The database engine and queue this worker process reuses from job to job."""
    settings = get_settings()
    if not settings.redis_url:
        raise RuntimeError("PACEKEEPER_REDIS_URL is not set: the sweeper needs Redis")
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
    return engine, make_queue(connect(settings.redis_url), settings.queue_name)


def process_signal(signal_id: str) -> dict[str, Any] | Retry:
    """A queued signal: place its orders exactly once (``app.execution.service``); one the
    exchange refuses for good ends refused at once (``app.signals.refusals``)."""
    from app.exchange.errors import Rejected
    from app.execution.service import process_signal as execute
    from app.signals.refusals import refuse_rejected, rejection_reason
    from worker.resources import resources

    res = resources()
    # An order in doubt is parked, not waited for: this thread is free for the next signal.
    ctx = res.exec_context(doubt_patience=res.settings.doubt_patience)
    try:
        outcome = execute(ctx, signal_id)
    except Rejected as exc:
        if not refuse_rejected(ctx.sessions, signal_id, exc, now=ctx.clock.now()):
            raise
        return {"signal_id": signal_id, "status": "refused", "reason": rejection_reason(exc)}
    if outcome.retry_in is not None:
        # Released to `queued`; the attempt limit is the signal's own (execution_max_attempts).
        return Retry(max=EXECUTION_RETRIES, interval=max(1, round(outcome.retry_in)))
    return outcome.as_dict()


def sweep_intake() -> dict[str, Any]:
    """Periodic: enqueue every signal that never reached the queue, or whose job vanished."""
    engine, queue = _intake_resources()
    lease = timedelta(seconds=get_settings().execution_lease)
    return run_sweep(engine, queue, lease=lease).as_dict()


def monitor_algos() -> dict[str, Any]:
    """Periodic: one monitor cycle (pace, cancels, fills, brackets); skipped while another runs."""
    from app.monitoring.service import run_cycle
    from worker.resources import resources

    return run_cycle(resources().exec_context()).as_dict()


def reconcile() -> dict[str, Any]:
    """Periodic and at start: converge the database with the exchange; flag foreign orders."""
    from app.monitoring.reconcile import reconcile as reconcile_with_exchange
    from worker.resources import resources

    return reconcile_with_exchange(resources().exec_context()).as_dict()


def check_keys() -> dict[str, Any]:
    """At start and daily: each account's key permissions (``app.keyguard``); a key that
    can withdraw is refused until it no longer can."""
    from app.keyguard import check_keys as check
    from worker.resources import resources

    res = resources()
    ctx = res.exec_context()
    verdicts = check(ctx.clients, ctx.sessions, res.settings.key_guard_ip_restriction)
    return {v.account: v.refused or "ok" for v in verdicts}


def record_quality() -> dict[str, Any]:
    """Periodic: the execution quality of signals whose execution has ended
    (``app.execution.quality``: VWAP over the window from klines, slippage, fees, delays)."""
    from app.execution.quality import record_due
    from worker.resources import resources

    return {"recorded": record_due(resources().exec_context())}


def deliver_notifications() -> dict[str, Any]:
    """Periodic: send the notifications that are due (``app.notify.service``)."""
    from app.notify.service import deliver
    from worker.resources import resources

    res = resources()
    return deliver(res.sessions, res.settings).as_dict()


def watch_components() -> dict[str, Any]:
    """Periodic: read the components of /health/ready; a confirmed change is a notification."""
    from types import SimpleNamespace

    from app.api.health import run_checks
    from app.models import utcnow
    from app.notify.components import watch
    from worker.resources import resources

    res = resources()
    state = SimpleNamespace(
        settings=res.settings, engine=res.engine, redis=res.redis, session_factory=res.sessions
    )
    changes = watch(res.sessions, run_checks(state), now=utcnow())
    return {"changes": [f"{c.component} {'up' if c.ok else 'down'}" for c in changes]}
