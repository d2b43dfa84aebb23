"""An exchange rejection is permanent: a signal for a symbol the exchange does not list ends
refused at once, with the exchange's reason and an event, and is never run again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from sqlalchemy import select

from app.db import session_scope
from app.execution.context import ExecContext
from app.models import Event, utcnow
from app.queue import make_queue
from app.signals.sweeper import sweep_intake
from tests.execution.conftest import ledger, positions, signal_row, submit
from worker import jobs
from worker import resources as worker_resources


@pytest.fixture
def installed(ctx: ExecContext) -> Iterator[None]:
    """The worker process's resources, as `pacekeeper worker` builds them."""
    previous = worker_resources.install(worker_resources.build(ctx.settings))
    yield
    mine = worker_resources.install(previous)
    assert mine is not None
    mine.close()


@pytest.mark.parametrize("symbol", ["NOPEUSDT", "NOPEUSDT.P"])
def test_a_symbol_the_exchange_does_not_list_is_refused_at_once(
    ctx: ExecContext,
    control: httpx.Client,
    installed: None,
    redis_conn: redis.Redis,
    queue_name: str,
    symbol: str,
) -> None:
    sid = submit(ctx, symbol=symbol, quantity="1")

    result = jobs.process_signal(sid)

    assert isinstance(result, dict) and result["status"] == "refused"
    row = signal_row(ctx, sid)
    assert row.status == "refused"
    assert row.status_reason is not None and "code -1121" in row.status_reason
    with session_scope(ctx.sessions) as session:
        kinds = list(session.scalars(select(Event.kind).where(Event.signal_id == sid)))
    assert "refused" in kinds
    assert ledger(control) == []
    assert all(p.status == "closed" for p in positions(ctx))
    # Never again: a later run skips it, and the sweeper has nothing to recover.
    assert jobs.process_signal(sid)["status"] == "skipped"  # type: ignore[index]
    engine = ctx.sessions.kw["bind"]
    report = sweep_intake(
        engine, make_queue(redis_conn, queue_name), now=utcnow() + timedelta(hours=1)
    )
    assert (report.enqueued, report.requeued, report.recovered) == (0, 0, 0)
    assert signal_row(ctx, sid).attempts == 1
