"""Binance's read-after-write lag: an order that executed can answer "does not exist" for a
while. A lost answer is resent only after the look-ups have covered that window, measured
from when the request could no longer take effect (and from the first look-up); meanwhile
the worker keeps its claim's lease alive."""

from __future__ import annotations

import time
from decimal import Decimal
from itertools import pairwise
from typing import Any

import httpx
import pytest
from rq.job import Job
from sqlalchemy import update

from app.config import Settings
from app.db import session_scope
from app.exchange.ids import client_order_id
from app.exchange.models import Order as ExchangeOrder
from app.execution.context import ExecContext
from app.execution.journal import add_orders
from app.execution.planning import OrderIntent
from app.models import Order
from app.queue import JOB_TIMEOUT, enqueue_signals, job_id, make_queue
from paper.clock import ManualClock
from tests.execution.conftest import (
    MakeContext,
    event_kinds,
    fault,
    ledger,
    orders,
    run,
    signal_row,
    submit,
)

D = Decimal
pytestmark = pytest.mark.slow


def test_executed_late_answer_lost_and_lag_longer_than_the_lookups_is_one_order(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    # The request sits 2.5 s (inside its 3 s recvWindow) before it executes, then the answer
    # is a 504: by the time reconcile starts, timestamp + recvWindow has already passed.
    # The exchange hides the new order for 4 s (read-after-write lag): look-ups spread over
    # the window (5 s here, 30 s by default) find it; it is adopted, never sent again.
    ctx = make_ctx(reconcile_lag_window=5.0)
    fault(control, action="latency", path="/api/v3/order", method="POST", count=1, delay_ms=2500)
    fault(control, action="fail_after", path="/api/v3/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip
    fault(control, action="read_lag", path="/api/v3/order", seconds=4)
    sid = submit(ctx, quantity="0.01")

    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    assert len(ledger(control, kind="spot_order")) == 1
    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 1
    kinds = event_kinds(ctx, sid)
    assert "absent" not in kinds and "resent" not in kinds
    assert kinds.index("unknown") < kinds.index("reconciled")


def test_row_left_sending_past_the_horizon_is_looked_up_through_the_lag(
    ctx: ExecContext, control: httpx.Client
) -> None:
    # The horizon path: a dead worker's row, sent long ago (no deadline known); the order
    # did execute but the exchange still hides it (2 s lag < the 2.5 s window).
    sid = submit(ctx, action="exit", side="sell", quantity="0.01")
    cid = client_order_id(sid, "exit")
    fault(control, action="read_lag", path="/api/v3/order", seconds=2)
    ctx.client.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=D("0.01"),
                         new_client_order_id=cid)  # fmt: skip
    intent = OrderIntent(leg="exit", kind="market", market="spot", symbol="BTCUSDT",
                         side="SELL", client_id=cid, quantity=D("0.01"))  # fmt: skip
    with session_scope(ctx.sessions) as session:
        (row,) = add_orders(session, [intent], signal_id=sid, position_id=None, now=ctx.clock.now())
        sent_at = time.time() - ctx.in_flight_horizon() - 1
        session.execute(
            update(Order)
            .where(Order.id == row.id)
            .values(status="sending", attempts=1, extra={"sent_at": sent_at})
        )

    assert run(ctx, sid).status == "done"

    assert len(ledger(control, client_id=cid)) == 1
    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 1


def test_the_lease_stays_alive_while_waiting_out_the_lag(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    # Lease 2 s, reconcile longer: without a heartbeat per look-up the signal would look dead
    # to the sweeper half-way through. Each look-up refreshes it (signals.updated_at). The
    # waits run on the context's clock: stepped, not slept.
    ctx = make_ctx(execution_lease=2.0, reconcile_lag_window=3.5)
    ctx.clock = clock = ManualClock()
    fault(control, action="fail_before", path="/api/v3/order", method="POST", count=1)
    sid = submit(ctx, quantity="0.01")
    seen: list[float] = []
    real_lookup = ctx.client.find_order

    def watching(symbol: str, client_order_id: str) -> ExchangeOrder | None:
        row = signal_row(ctx, sid)
        seen.append(row.updated_at.timestamp())
        return real_lookup(symbol, client_order_id)

    ctx.client.find_order = watching  # type: ignore[method-assign]
    started = clock.now().timestamp()

    assert run(ctx, sid).status == "done"

    finished = clock.now().timestamp()
    assert finished - started >= 3.5  # the window was waited out
    stamps = [started, *seen, finished]
    assert seen and max(b - a for a, b in pairwise(stamps)) < 2.0
    (order,) = orders(ctx, sid)
    assert order.attempts == 2 and len(ledger(control, client_id=order.client_id)) == 1


def test_the_rq_job_outlives_the_longest_reconcile(redis_conn: Any, queue_name: str) -> None:
    settings = Settings(_env_file=None)
    ctx = ExecContext(settings, client=None, sessions=None)  # type: ignore[arg-type]
    assert settings.reconcile_lag_window >= 30
    # Entry and bracket both in doubt, each reconciled, resent and reconciled again.
    assert 4 * ctx.longest_reconcile() < JOB_TIMEOUT
    # The sweeper's jobs carry that timeout too (RQ's default is 180 s).
    queue = make_queue(redis_conn, queue_name)
    done, error = enqueue_signals(queue, ["sig-timeout"], register=False)
    assert done == ["sig-timeout"] and error is None
    job = Job.fetch(job_id("sig-timeout"), connection=redis_conn, serializer=queue.serializer)
    assert job.timeout == JOB_TIMEOUT
