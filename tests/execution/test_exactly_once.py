"""Two placers of the same row (a signal's worker, the monitor, the resting-order follower,
a cancel): whatever their timing, the exchange's ledger shows each order at most once and
the row ends as the venue has it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.db import session_scope
from app.exchange.ids import client_order_id
from app.execution.brackets import bracket_key, cancel_brackets
from app.execution.cancels import cancel_order
from app.execution.context import ExecContext
from app.execution.journal import add_orders
from app.execution.placement import place
from app.execution.planning import OrderIntent
from app.execution.protection import protect_position
from app.models import Order, Position
from tests.execution.conftest import MakeContext, fault, ledger, orders, run, set_price, submit

D = Decimal
pytestmark = pytest.mark.slow


def _seed_unknown(ctx: ExecContext) -> tuple[str, int]:
    """A market exit whose first send got no answer long ago and never reached the venue."""
    sid = submit(ctx, action="exit", side="sell", quantity="0.01")
    intent = OrderIntent(leg="exit", kind="market", market="spot", symbol="BTCUSDT",
                         side="SELL", client_id=client_order_id(sid, "exit"),
                         quantity=D("0.01"))  # fmt: skip
    with session_scope(ctx.sessions) as session:
        (row,) = add_orders(session, [intent], signal_id=sid, position_id=None, now=ctx.clock.now())
        sent_at = time.time() - ctx.in_flight_horizon() - 1
        session.execute(
            update(Order)
            .where(Order.id == row.id)
            .values(status="unknown", attempts=1, extra={"sent_at": sent_at})
        )
        return sid, row.id


def _stale_final_lookup(loser: ExecContext, winner: ExecContext) -> None:
    """The race window made wide: from its third look-up on, ``loser`` gets its (empty)
    answer only after ``winner`` has marked the row ``sending`` again and is sending it, so
    the loser concludes from a stale view of the row."""
    resent = threading.Event()
    real_send, real_find = winner.client.new_order, loser.client.find_order
    calls = [0]

    def send(*args: Any, **kwargs: Any) -> Any:
        resent.set()
        return real_send(*args, **kwargs)

    def find(*args: Any, **kwargs: Any) -> Any:
        found = real_find(*args, **kwargs)
        calls[0] += 1
        if calls[0] >= 3:
            resent.wait(15)
        return found

    winner.client.new_order = send  # type: ignore[method-assign]
    loser.client.find_order = find  # type: ignore[method-assign]


def _together(first: Callable[[], Any], second: Callable[[], Any], lag: float) -> list[Any]:
    """Run both, ``second`` starting ``lag`` s after ``first``; re-raise what they raised."""
    results: list[Any] = [None, None]

    def runner(index: int, fn: Callable[[], Any]) -> None:
        try:
            results[index] = fn()
        except BaseException as exc:  # reported to the test below
            results[index] = exc

    threads = [threading.Thread(target=runner, args=(0, first))]
    threads.append(threading.Thread(target=runner, args=(1, second)))
    threads[0].start()
    time.sleep(lag)
    threads[1].start()
    for thread in threads:
        thread.join(60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_two_placers_proving_the_same_row_absent_send_it_once(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    # The monitor and a worker both reconcile one row in doubt and both prove it absent.
    # The worker resends it (its request takes 1 s to execute); the monitor, whose proof was
    # about the earlier send, must not resend the row it now finds `sending`.
    monitor, worker = make_ctx(), make_ctx()
    sid, order_id = _seed_unknown(worker)
    fault(control, action="latency", path="/api/v3/order", method="POST", count=2, delay_ms=1000)
    _stale_final_lookup(monitor, worker)

    _together(lambda: place(monitor, order_id), lambda: place(worker, order_id), lag=0.3)

    (order,) = orders(worker, sid)
    assert len(ledger(control, client_id=order.client_id)) == 1
    assert order.status == "filled" and order.attempts == 2


def test_a_cancel_racing_a_resend_never_marks_an_executed_order_cancelled(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    # A worker resends a row proven absent (it executes, the answer is lost); a cancel
    # whose proof was about the earlier send must not then write `cancelled` over it.
    canceller, worker = make_ctx(), make_ctx()
    sid, order_id = _seed_unknown(worker)
    fault(control, action="latency", path="/api/v3/order", method="POST", count=1, delay_ms=1000)
    fault(control, action="fail_after", path="/api/v3/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip
    _stale_final_lookup(canceller, worker)

    _together(
        lambda: cancel_order(canceller, order_id, reason="test"),
        lambda: place(worker, order_id),
        lag=0.3,
    )

    (order,) = orders(worker, sid)
    assert len(ledger(control, client_id=order.client_id)) == 1
    assert order.status == "filled", order.status


def _meet_before_pricing(contexts: list[ExecContext]) -> None:
    """Each context's first price read waits for the others': every placer has read the
    position's bracket history before any of them writes a new bracket."""
    barrier = threading.Barrier(len(contexts), timeout=15)
    for ctx in contexts:
        real = ctx.client.mark_price
        first = [True]

        def meet(symbol: str, *, _real: Any = real, _first: list[bool] = first) -> Any:
            if _first[0]:
                _first[0] = False
                barrier.wait()
            return _real(symbol)

        ctx.client.mark_price = meet  # type: ignore[method-assign]


@pytest.mark.parametrize("placers", [2, 3])
def test_placers_protecting_one_position_at_once_make_one_bracket(
    make_ctx: MakeContext, control: httpx.Client, placers: int
) -> None:
    # A USD-M position whose bracket is gone (a tp/sl signal just cancelled it): the tp/sl
    # signal's worker, the monitor (and the resting-order follower) protect it at the same
    # moment. They must compute one set of client ids, and one of them places it.
    setup = make_ctx()
    set_price(control, "BTCUSDT", "65000")
    entry = submit(setup, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000",
                   stop_loss="60000")  # fmt: skip
    assert run(setup, entry).status == "done"
    tp_signal = submit(setup, action="tp", symbol="BTCUSDT.P", side=None,
                       execution={"type": "limit", "price": "72000"})  # fmt: skip
    with session_scope(setup.sessions) as session:
        (position,) = session.scalars(select(Position))
        cancel_brackets(setup, session, position, reason="replaced")
    contexts = [make_ctx() for _ in range(placers)]
    _meet_before_pricing(contexts)
    owners = [tp_signal, None, None]

    def protect(ctx: ExecContext, owner: str | None) -> Order | None:
        with session_scope(ctx.sessions) as session:
            row = session.get(Position, position.id)
            assert row is not None
            return protect_position(ctx, session, row, reason="test", signal_id=owner)

    results: list[Any] = [None] * placers
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, protect(contexts[i], owners[i])))
        for i in range(placers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    key = bracket_key(position.id)
    first = {client_order_id(key, "bracket-tp"), client_order_id(key, "bracket-sl")}
    second = {client_order_id(key, "bracket2-tp"), client_order_id(key, "bracket2-sl")}
    placed = [e["client_id"] for e in ledger(control, kind="futures_conditional")]
    assert sorted(placed) == sorted(first | second)  # each once
    assert all(r is not None and r.client_id in second for r in results)
