"""Faults between us and the exchange: whatever happens, the paper ledger shows each order
once (or, for a rejection, not at all) and the signal ends in a state that says why."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.controls import halt
from app.db import session_scope
from app.exchange.errors import Temporary
from app.exchange.ids import client_algo_id, client_order_id
from app.execution.context import ExecContext
from app.execution.journal import add_orders
from app.execution.planning import OrderIntent
from app.models import Order
from paper.clock import ManualClock
from paper.faults import IN_FLIGHT_GRACE
from tests.execution.conftest import (
    MakeContext,
    Paper,
    event_kinds,
    fault,
    ledger,
    orders,
    run,
    set_price,
    signal_row,
    submit,
)

D = Decimal
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("path", "fields", "failure"),
    [
        ("/api/v3/order", {"quantity": "0.01"}, {"status": 500, "code": None, "raw_body": ""}),
        ("/api/v3/order", {"quantity": "0.01"}, {"status": 400, "code": -1007}),
        (
            "/sapi/v1/algo/spot/newOrderTwap",
            {"quantity": "0.05", "execution": {"type": "twap", "duration": 600}},
            {"status": 502, "code": -1006},
        ),
        ("/fapi/v1/order", {"symbol": "BTCUSDT.P", "quantity": "0.01"}, {"status": 500}),
        (
            "/sapi/v1/algo/futures/newOrderVp",
            {
                "symbol": "BTCUSDT.P",
                "quantity": "0.5",
                "execution": {"type": "vp", "urgency": "low"},
            },
            {"status": 400, "code": -1007},
        ),
    ],
)
def test_executed_then_no_answer_is_reconciled_never_placed_twice(
    ctx: ExecContext,
    control: httpx.Client,
    path: str,
    fields: dict[str, Any],
    failure: dict[str, Any],
) -> None:
    fault(control, action="fail_after", path=path, method="POST", count=1, **failure)
    sid = submit(ctx, **fields)

    outcome = run(ctx, sid)

    assert outcome.status in ("done", "working"), outcome.reason
    (order,) = orders(ctx, sid)
    assert order.venue_id is not None and order.attempts == 1
    assert len(ledger(control, client_id=order.client_id)) == 1
    kinds = event_kinds(ctx, sid)
    assert kinds.index("unknown") < kinds.index("reconciled")


def test_5xx_before_executing_is_proven_absent_then_sent_once(
    ctx: ExecContext, control: httpx.Client
) -> None:
    # A 500 that did not execute: the look-ups find nothing; once the request's
    # timestamp + recvWindow has passed on the exchange's clock it can no longer execute,
    # so the order is sent again (same client id), well before the generic horizon.
    fault(control, action="fail_before", path="/api/v3/order", method="POST", count=1)
    sid = submit(ctx, quantity="0.01")
    started = time.monotonic()

    assert run(ctx, sid).status == "done"

    assert time.monotonic() - started < ctx.in_flight_horizon()
    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 2
    assert len(ledger(control, client_id=order.client_id)) == 1
    kinds = event_kinds(ctx, sid)
    assert kinds.index("unknown") < kinds.index("absent") < kinds.index("resent")


def test_bracket_executed_then_500_is_one_oco(ctx: ExecContext, control: httpx.Client) -> None:
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_after", path="/api/v3/orderList/oco", method="POST", count=1)
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")

    assert run(ctx, sid).status == "done"
    assert len(ledger(control, kind="oco")) == 1


def test_lost_answer_and_read_after_write_lag_still_one_order(
    ctx: ExecContext, control: httpx.Client
) -> None:
    fault(control, action="fail_after", path="/api/v3/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip
    fault(control, action="read_lag", path="/api/v3/order", seconds=1.5)
    sid = submit(ctx, quantity="0.01")

    assert run(ctx, sid).status == "done"
    assert len(ledger(control, kind="spot_order")) == 1
    (order,) = orders(ctx, sid)
    assert order.status == "filled"


def _seed_sending(ctx: ExecContext, sid: str, intent: OrderIntent, sent_ago: float) -> int:
    """A row as a worker killed mid-request leaves it: ``sending``, sent ``sent_ago`` s ago."""
    with session_scope(ctx.sessions) as session:
        (row,) = add_orders(session, [intent], signal_id=sid, position_id=None, now=ctx.clock.now())
        session.execute(
            update(Order)
            .where(Order.id == row.id)
            .values(status="sending", attempts=1, extra={"sent_at": time.time() - sent_ago})
        )
        return row.id


def _market_intent(sid: str) -> OrderIntent:
    return OrderIntent(leg="exit", kind="market", market="spot", symbol="BTCUSDT", side="SELL",
                       client_id=client_order_id(sid, "exit"), quantity=D("0.01"))  # fmt: skip


def test_order_left_sending_and_absent_is_sent_once_after_the_horizon(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = submit(ctx, action="exit", side="sell", quantity="0.01")
    _seed_sending(ctx, sid, _market_intent(sid), sent_ago=ctx.in_flight_horizon() + 1)

    assert run(ctx, sid).status == "done"

    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 2
    assert len(ledger(control, client_id=order.client_id)) == 1
    kinds = event_kinds(ctx, sid)
    assert kinds.index("absent") < kinds.index("resent")


def test_order_left_sending_that_did_execute_is_adopted_not_resent(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = submit(ctx, action="exit", side="sell", quantity="0.01")
    intent = _market_intent(sid)
    # The dead worker's request did reach the exchange: the order is there (and filled).
    ctx.client.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=D("0.01"),
                         new_client_order_id=intent.client_id)  # fmt: skip
    _seed_sending(ctx, sid, intent, sent_ago=0)

    assert run(ctx, sid).status == "done"

    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 1
    assert len(ledger(control, client_id=intent.client_id)) == 1


def test_duplicate_client_algo_id_is_adopted(ctx: ExecContext, control: httpx.Client) -> None:
    sid = submit(ctx, quantity="0.05", execution={"type": "twap", "duration": 600})
    ctx.client.new_spot_twap(symbol="BTCUSDT", side="BUY", quantity=D("0.05"), duration=600,
                             client_algo_id=client_algo_id(sid, "entry"))  # fmt: skip

    assert run(ctx, sid).status == "working"

    (order,) = orders(ctx, sid)
    assert order.venue_id is not None
    assert len(ledger(control, client_id=order.client_id)) == 1
    assert "adopted" in event_kinds(ctx, sid)


def test_an_open_order_of_someone_else_holding_our_client_id_is_never_adopted(
    ctx: ExecContext, control: httpx.Client
) -> None:
    """A spot client id is unique among open orders only: a stranger's resting LIMIT order
    holds the id our market entry is about to use. The exchange answers "Duplicate order
    sent."; the order found under the id is not ours, so the entry fails with the reason
    and the stranger's order is neither adopted nor cancelled."""
    sid = submit(ctx, quantity="0.01")
    cid = client_order_id(sid, "entry")
    theirs = ctx.client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=D("0.02"),
                                  price=D("40000"), time_in_force="GTC",
                                  new_client_order_id=cid)  # fmt: skip

    outcome = run(ctx, sid)

    assert outcome.status == "failed"
    assert outcome.reason is not None and f"order {theirs.orderId}" in outcome.reason
    (order,) = orders(ctx, sid)
    assert order.status == "rejected" and order.venue_id is None and order.error_code == -2010
    (entry,) = ledger(control, client_id=cid)
    assert entry["id"] == theirs.orderId and entry["status"] == "NEW"


def test_after_no_answer_a_strangers_order_under_our_id_is_not_taken_for_ours(
    ctx: ExecContext, control: httpx.Client
) -> None:
    """Our request died before executing (503 before the engine) and a stranger's filled
    order carries our client id: the look-up finds theirs, which is not ours, so ours is
    proven absent and sent again (the id is free: theirs is not open)."""
    sid = submit(ctx, quantity="0.01")
    cid = client_order_id(sid, "entry")
    theirs = ctx.client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D("0.03"),
                                  new_client_order_id=cid)  # fmt: skip
    fault(control, action="fail_before", path="/api/v3/order", method="POST", count=1,
          status=503, code=None, raw_body="")  # fmt: skip

    assert run(ctx, sid).status == "done"

    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.venue_id not in (None, theirs.orderId)
    assert order.executed_qty == D("0.01")
    assert sorted(e["id"] for e in ledger(control, client_id=cid)) == sorted(
        [theirs.orderId, order.venue_id]
    )
    kinds = event_kinds(ctx, sid)
    assert kinds.index("not_ours") < kinds.index("absent") < kinds.index("resent")


def test_rejection_fails_the_signal_with_binances_code_and_message(
    ctx: ExecContext, control: httpx.Client
) -> None:
    control.post("/balances", json={"balances": {"USDT": "1"}}).raise_for_status()
    sid = submit(ctx, quantity="0.01", take_profit="70000")

    outcome = run(ctx, sid)

    assert outcome.status == "failed"
    row = signal_row(ctx, sid)
    (order,) = orders(ctx, sid)
    assert order.status == "rejected" and order.error_code == -2010
    assert row.status_reason is not None and "(code -2010)" in row.status_reason
    assert order.error_msg and order.error_msg in row.status_reason
    assert ledger(control) == []


def test_temporary_error_releases_the_signal_then_the_retry_places_it_once(
    ctx: ExecContext, control: httpx.Client
) -> None:
    fault(control, action="fail_before", path="/fapi/v1/order", method="POST", count=1,
          status=503, code=-1008, msg="Service Unavailable.")  # fmt: skip
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.01")

    first = run(ctx, sid)

    assert first.status == "queued" and first.retry_in is not None and first.retry_in >= 2
    assert signal_row(ctx, sid).status == "queued"
    (order,) = orders(ctx, sid)
    assert order.status == "planned"
    second = run(ctx, sid)
    assert second.status == "done"
    assert len(ledger(control, kind="futures_order")) == 1
    assert "deferred" in event_kinds(ctx, sid)


def test_temporary_errors_end_failed_after_the_attempt_limit(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(execution_max_attempts=2)
    fault(control, action="fail_before", path="/fapi/v1/order", method="POST",
          status=503, code=-1008, msg="Service Unavailable.")  # fmt: skip
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.01")

    assert run(ctx, sid).status == "queued"
    last = run(ctx, sid)

    assert last.status == "failed" and "gave up after 2 attempts" in (last.reason or "")
    assert ledger(control) == []


def test_expired_signal_sends_nothing(ctx: ExecContext, control: httpx.Client) -> None:
    ctx.clock = clock = ManualClock()
    sid = submit(ctx, quantity="0.01", ttl=1)
    clock.advance(1.1)

    outcome = run(ctx, sid)

    assert outcome.status == "expired"
    assert orders(ctx, sid) == [] and ledger(control) == []


def test_halt_refuses_entries_but_lets_exits_through(
    ctx: ExecContext, control: httpx.Client
) -> None:
    entry_id = submit(ctx, quantity="0.01")
    assert run(ctx, entry_id).status == "done"
    with session_scope(ctx.sessions) as session:
        halt(session, reason="maintenance")

    refused = run(ctx, submit(ctx, quantity="0.01", strategy="other"))
    exit_ = run(ctx, submit(ctx, action="exit", side=None))

    assert refused.status == "refused" and "halted: maintenance" in (refused.reason or "")
    assert exit_.status == "done"
    assert [e["side"] for e in ledger(control, kind="spot_order")] == ["BUY", "SELL"]


@pytest.mark.parametrize(
    ("changes", "first", "second", "reason"),
    [
        ({}, {"quantity": "0.01"}, {"quantity": "0.01"}, "still live"),
        ({"max_notional_per_signal": D("500")}, None, {"quantity": "0.01"}, "per_signal"),
        ({"max_notional_per_symbol": D("1000")}, {"quantity": "0.01"},
         {"quantity": "0.01", "strategy": "b"}, "per_symbol"),
        ({"max_open_twap_spot": 1},
         {"quantity": "0.05", "execution": {"type": "twap", "duration": 600}},
         {"quantity": "0.05", "strategy": "b", "execution": {"type": "twap", "duration": 600}},
         "at the maximum 1"),
    ],
)  # fmt: skip
def test_guards_refuse_before_anything_is_sent(
    make_ctx: MakeContext,
    control: httpx.Client,
    changes: dict[str, Any],
    first: dict[str, Any] | None,
    second: dict[str, Any],
    reason: str,
) -> None:
    set_price(control, "BTCUSDT", "65000")
    ctx = make_ctx(**changes)
    if first is not None:
        assert run(ctx, submit(ctx, **first)).status in ("done", "working")
    placed = len(ledger(control))

    outcome = run(ctx, submit(ctx, **second))

    assert outcome.status == "refused" and reason in (outcome.reason or "")
    assert len(ledger(control)) == placed


@pytest.mark.parametrize("meanwhile", ["halted", "expired"])
def test_deferred_entry_is_not_sent_late_once_halted_or_expired(
    ctx: ExecContext, control: httpx.Client, meanwhile: str
) -> None:
    fault(control, action="fail_before", path="/fapi/v1/order", method="POST", count=1,
          status=503, code=-1008, msg="Service Unavailable.")  # fmt: skip
    ctx.clock = clock = ManualClock()
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.01", ttl=2)
    assert run(ctx, sid).status == "queued"
    if meanwhile == "halted":
        with session_scope(ctx.sessions) as session:
            halt(session, reason="drill")
    else:
        clock.advance(2.1)

    outcome = run(ctx, sid)

    assert outcome.status == ("refused" if meanwhile == "halted" else "expired")
    (order,) = orders(ctx, sid)
    assert order.status == "cancelled"
    assert ledger(control) == []


def run_until_settled(ctx: ExecContext, sid: str, runs: int = 200) -> list[Any]:
    """Run a signal as its job would be, again each time it is put back, until it settles;
    returns the outcomes (the last one settled). A ``ManualClock`` is stepped by the whole
    ``retry_in``; on the system clock, the test does not wait it all."""
    outcomes = []
    for _ in range(runs):
        outcome = run(ctx, sid)
        outcomes.append(outcome)
        if outcome.retry_in is None:
            return outcomes
        if isinstance(ctx.clock, ManualClock):
            ctx.clock.advance(outcome.retry_in)
        else:  # the exchange's read lag runs on real time
            time.sleep(min(outcome.retry_in, 0.2))
    raise AssertionError(f"not settled after {runs} runs: {outcomes[-1]}")


def test_an_order_in_doubt_is_parked_then_found_by_a_later_run(
    make_ctx: Any, control: httpx.Client
) -> None:
    ctx = make_ctx()
    ctx.doubt_patience = 0.3
    fault(control, action="fail_after", path="/api/v3/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip
    fault(control, action="read_lag", path="/api/v3/order", seconds=1.5)
    sid = submit(ctx, quantity="0.01")

    outcomes = run_until_settled(ctx, sid)

    # The first run did not wait out the read lag: it gave its thread back, in doubt.
    assert outcomes[0].status == "queued" and outcomes[0].retry_in
    assert outcomes[-1].status == "done", outcomes[-1].reason
    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 1
    assert len(ledger(control, kind="spot_order")) == 1
    kinds = event_kinds(ctx, sid)
    assert kinds.index("unknown") < kinds.index("parked") < kinds.index("reconciled")


def test_a_parked_proof_of_absence_goes_on_across_runs_then_sends_once(
    make_ctx: Any, control: httpx.Client
) -> None:
    ctx = make_ctx(reconcile_lag_window=1.0)
    ctx.doubt_patience = 0.2
    ctx.clock = ManualClock()
    fault(control, action="fail_before", path="/api/v3/order", method="POST", count=1)
    sid = submit(ctx, quantity="0.01")

    outcomes = run_until_settled(ctx, sid)

    assert len(outcomes) > 2 and outcomes[-1].status == "done"
    (order,) = orders(ctx, sid)
    assert order.status == "filled" and order.attempts == 2
    assert len(ledger(control, client_id=order.client_id)) == 1
    kinds = event_kinds(ctx, sid)
    assert kinds.index("parked") < kinds.index("absent") < kinds.index("resent")
    # Each run went on from the look-ups before it: the proof took the look-ups it needs,
    # not that many per run.
    absent = [k for k in kinds if k == "parked"]
    assert len(absent) == len(outcomes) - 1


def test_a_spot_ip_ban_does_not_stop_usdm_protection_or_closing(
    ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    """api.binance.com and fapi.binance.com ban separately: with the spot host banned (418),
    a USD-M entry is still protected by its stop and an exit still closes it."""
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="rate_limit", path="/api/", count=1, retry_after=30, ban_seconds=120)
    with httpx.Client(base_url=paper.url, timeout=5) as rogue:  # ignores Retry-After
        assert rogue.get("/api/v3/time").status_code == 429
        time.sleep(IN_FLIGHT_GRACE)  # past the moment a request could still be in flight
        assert rogue.get("/api/v3/time").status_code == 418
    with pytest.raises(Temporary):
        ctx.client.ticker_price("BTCUSDT")  # our governor learns of the ban
    assert ctx.client.governor.snapshot()["banned"]["spot"] > 60

    entry = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", stop_loss="60000")
    assert run(ctx, entry).status == "done"
    (stop,) = [o for o in orders(ctx, entry) if o.leg == "bracket-sl"]
    assert stop.status == "working"
    exit_id = submit(ctx, action="exit", symbol="BTCUSDT.P", side=None)
    outcome = run(ctx, exit_id)

    assert outcome.status == "done", outcome.reason
    (close,) = orders(ctx, exit_id)
    assert (close.side, close.status, close.executed_qty) == ("SELL", "filled", D("0.02"))
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY", "SELL"]
    with pytest.raises(Temporary):  # the spot host is still banned
        ctx.client.ticker_price("BTCUSDT")
