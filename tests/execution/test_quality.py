"""Execution quality per signal: arrival price, average fill, slippage against arrival and
the window's VWAP, fees in quote, step delays; in the API and the metrics."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import httpx
import redis

from app.db import session_scope
from app.execution.context import ExecContext
from app.execution.quality import (
    DUE_WITHIN,
    QUALITY,
    due,
    measure,
    record_due,
    record_quality,
    slippage_bps,
    vwap_of_klines,
)
from app.metrics import RedisCollector
from app.models import Event
from paper.clock import ManualClock
from tests.execution.conftest import MakeContext, Paper, orders, run, set_price, submit

D = Decimal


def test_slippage_is_signed_so_that_a_cost_is_positive() -> None:
    assert slippage_bps("BUY", D("100.10"), D("100")) == D("10.00")
    assert slippage_bps("SELL", D("100.10"), D("100")) == D("-10.00")
    assert slippage_bps("SELL", D("99.90"), D("100")) == D("10.00")


def test_vwap_of_klines_is_quote_volume_over_volume() -> None:
    # Binance's kline rows: [open time, open, high, low, close, volume, close time, quote
    # volume, trades, taker base, taker quote, ignore]
    rows = [
        [0, "100", "101", "99", "100", "2", 59999, "200", 3, "1", "100", "0"],
        [60000, "100", "104", "100", "103", "1", 119999, "103", 1, "1", "103", "0"],
    ]
    assert vwap_of_klines(rows) == D("101")
    assert vwap_of_klines([]) is None


def entered(ctx: ExecContext, control: httpx.Client) -> str:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01")
    assert run(ctx, sid).status == "done"
    return sid


def test_a_filled_entry_has_its_arrival_price_fill_fees_and_delays(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = entered(ctx, control)
    with session_scope(ctx.sessions) as session:
        quality = measure(session, sid)
    assert quality is not None
    (order,) = orders(ctx, sid)
    assert quality.side == "BUY"
    assert quality.arrival_price == D("65000")
    assert quality.filled_qty == order.executed_qty > 0
    assert quality.avg_price is not None
    assert quality.slippage_arrival_bps == slippage_bps("BUY", quality.avg_price, D("65000"))
    # The paper takes its fee in the asset bought (BTC), valued here at the fill's price.
    assert quality.fees_quote is not None and quality.fees_quote > 0
    assert quality.fees_other == {}
    delays = quality.delays
    assert delays["first_order"] is not None and delays["first_fill"] is not None
    assert 0 <= delays["first_order"] <= delays["first_fill"] <= (delays["last_fill"] or 0)
    assert quality.vwap is None  # recorded by the monitor's job once the execution ended


def test_a_recorded_vwap_gives_the_slippage_against_the_market(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = entered(ctx, control)
    windows: list[tuple[datetime, datetime]] = []

    def market_vwap(symbol: str, market: str, start: datetime, end: datetime) -> Decimal:
        assert (symbol, market) == ("BTCUSDT", "spot")
        windows.append((start, end))
        return D("64900")

    with session_scope(ctx.sessions) as session:
        assert due(session, now=ctx.clock.now()) == [sid]
        recorded = record_quality(session, sid, market_vwap)
    with session_scope(ctx.sessions) as session:
        assert due(session, now=ctx.clock.now()) == []  # once
        kept = measure(session, sid)
    assert windows and windows[0][0] <= windows[0][1]
    assert recorded.vwap == D("64900") and kept is not None and kept.vwap == D("64900")
    assert recorded.avg_price is not None
    assert kept.slippage_vwap_bps == slippage_bps("BUY", recorded.avg_price, D("64900")) > 0


def test_the_job_records_vwap_from_the_exchanges_klines_and_the_metrics_show_it(
    make_ctx: MakeContext,
    control: httpx.Client,
    paper: Paper,
    redis_conn: redis.Redis,
    queue_name: str,
) -> None:
    ctx = make_ctx()
    ctx.redis = redis_conn
    sid = entered(ctx, control)
    paper.clock.advance(30)  # the market trades on: the fill's minute has volume

    assert record_due(ctx) == 1
    with session_scope(ctx.sessions) as session:
        (event,) = session.query(Event).filter_by(signal_id=sid, kind=QUALITY).all()
    assert event.data is not None and event.data["vwap"] is not None
    assert Decimal(event.data["vwap"]) > 0

    names = {
        (family.name, sample.labels.get("against") or sample.labels.get("step"))
        for family in RedisCollector(lambda: redis_conn, ctx.settings).collect()
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels["le"] == "+Inf"
    }
    assert ("pacekeeper_slippage_bps", "arrival") in names
    assert ("pacekeeper_slippage_bps", "vwap") in names
    assert ("pacekeeper_execution_step_seconds", "first_fill") in names
    for key in redis_conn.scan_iter(f"pacekeeper:metrics:{queue_name}:*"):
        redis_conn.delete(key)


def test_the_job_leaves_executions_that_ended_over_a_day_ago_on_its_clock(
    ctx: ExecContext, control: httpx.Client
) -> None:
    ctx.clock = clock = ManualClock()
    sid = entered(ctx, control)
    clock.advance(DUE_WITHIN.total_seconds() + 60)  # a day passes: stepped, not waited for

    assert record_due(ctx) == 0
    with session_scope(ctx.sessions) as session:
        assert due(session, now=clock.now(), since=DUE_WITHIN * 2) == [sid]  # only too old
        assert not session.query(Event).filter_by(signal_id=sid, kind=QUALITY).all()


def test_no_quality_before_anything_filled(ctx: ExecContext) -> None:
    sid = submit(ctx, quantity="0.01")
    with session_scope(ctx.sessions) as session:
        quality = measure(session, sid)
        assert due(session, now=ctx.clock.now()) == []
    assert quality is not None
    assert quality.filled_qty == 0 and quality.avg_price is None
    assert quality.slippage_arrival_bps is None and quality.delays["first_fill"] is None
