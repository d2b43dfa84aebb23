"""The fault battery, the exchange's faults: the paper exchange misbehaves (its fault rules,
``paper.faults``) while the whole stack runs under load. See ``conftest.py``."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from app.exchange.ids import client_order_id
from tests.faults.conftest import DRAIN, RATE, SYMBOLS, TIMEOUT, N, at, checked, signals
from tests.faults.load import Load, judge
from tests.faults.stack import Stack

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]

ORDER = {"path": "/api/v3/order", "method": "POST"}
# Signals whose client ids foreign orders take, every other one of them by an open order.
TAKEN = 400


def applied(stack: Stack) -> int:
    """How many times the paper exchange's fault rules were applied."""
    return sum(rule["applied"] for rule in stack.faults()["faults"])


def test_answers_lost_after_executing(stack: Stack, report: Any) -> None:
    """A fifth of the order requests execute, then answer a 5XX (503 -1006 "execution status
    unknown", or a bare 502 page): each is looked up by its client id and adopted, never
    sent twice."""
    stack.fault(action="fail_after", **ORDER, probability=0.1, status=503, code=-1006)
    stack.fault(action="fail_after", **ORDER, probability=0.1, status=502, code=None,
                raw_body="<html>502 Bad Gateway</html>")  # fmt: skip
    sent = Load(stack.api_url, rate=RATE).run(signals(stack, "lost"))
    verdict = judge("answers-lost", stack, sent, timeout=DRAIN)
    verdict.extra = {"answers_lost": applied(stack)}
    checked(verdict, report, stack)
    assert verdict.placed == N and verdict.extra["answers_lost"] > 0


def test_exchange_slower_than_the_client_timeout(
    make_stack: Callable[..., Stack], report: Any
) -> None:
    """One order request in twenty is held 3 s by the exchange, then executed; the client
    gives up after 2 s (``HTTP_TIMEOUT``). Each such order is in doubt until a look-up finds
    it; none is sent twice."""
    stack = make_stack(settings={"HTTP_TIMEOUT": "2"})
    hold = [i for i in range(N) if i % 20 == 10]
    sent = Load(stack.api_url, rate=RATE).run(
        signals(stack, "slow"),
        at(hold, lambda i: stack.fault(action="latency", **ORDER, count=1, delay_ms=3000)),
    )
    verdict = judge("slow-exchange", stack, sent, timeout=DRAIN)
    verdict.extra = {"held_3s": applied(stack)}
    checked(verdict, report, stack)
    assert verdict.placed == N and verdict.extra["held_3s"] == len(hold)


def test_rate_limited_then_never_banned(stack: Stack, report: Any) -> None:
    """Some order requests answer 429 with Retry-After 2 s; a request under that scope
    before it passes would earn a 418 ban (120 s). Every signal is placed, and no 418 is
    ever served: the back-off is honoured by every worker."""
    stack.fault(action="rate_limit", **ORDER, probability=0.2, count=max(3, N // 20),
                retry_after=2, ban_seconds=120)  # fmt: skip
    sent = Load(stack.api_url, rate=RATE).run(signals(stack, "limit"))
    verdict = judge("rate-limit", stack, sent, timeout=DRAIN)
    served = stack.faults()["served"]
    verdict.extra = {"429": served["429"], "418": served["418"]}
    checked(verdict, report, stack)
    assert verdict.placed == N and served["429"] > 0 and served["418"] == 0


def test_clock_skew(stack: Stack, report: Any) -> None:
    """The exchange's clock moves 3 s behind ours at a third of the load (our timestamps
    are then ahead of it), then 6 s ahead of ours at two thirds (they are then older than
    recvWindow): -1021, a resync of the offset, and one resend of the same request."""
    offsets = {N // 3: -3000, 2 * N // 3: 9000}  # cumulative: -3 s, then +6 s
    sent = Load(stack.api_url, rate=RATE).run(
        signals(stack, "skew"),
        at(list(offsets), lambda i: stack.fault(action="clock_offset", offset_ms=offsets[i])),
    )
    verdict = judge("clock-skew", stack, sent, timeout=DRAIN)
    verdict.extra = {"resyncs": stack.log_path.read_text().count("-1021, clock resynced")}
    checked(verdict, report, stack)
    assert verdict.placed == N and verdict.extra["resyncs"] > 0


def test_client_ids_already_taken_on_the_exchange(stack: Stack, report: Any) -> None:
    """Orders put on the exchange by someone else carry the client ids our signals will use
    (the workers are held while the signals arrive, so their ids are known in advance).
    Among the first TAKEN signals, every fourth id is taken by a filled order (a client id
    is unique among open orders only: ours is placed besides it), every fourth but two by an
    open LIMIT order (the exchange answers "Duplicate order sent."). Nothing is placed twice;
    no foreign order is taken for ours: a signal whose id an open foreign order holds ends
    refused, with a reason."""
    stack.hold("worker1", "worker2")
    sent = Load(stack.api_url, rate=RATE).run(signals(stack, "taken"))
    foreign: dict[int, str] = {}  # exchange order id -> the signal whose client id it took
    clash_open: set[str] = set()
    with stack.exchange() as bn:
        # The first TAKEN signals only: the open ones (all BTCUSDT) stay under the
        # exchange's 200 open orders per symbol.
        for index, item in enumerate(sent[:TAKEN]):
            signal_id = item.signal_id
            if signal_id is None or index % 4 not in (0, 2):
                continue
            symbol, cid = item.body["symbol"], client_order_id(signal_id, "entry")
            order = {"symbol": symbol, "side": "BUY", "newClientOrderId": cid,
                     "quantity": item.body["quantity"]}  # fmt: skip
            if index % 4 == 0:
                placed = bn.ok("POST", "/api/v3/order", {**order, "type": "MARKET"})
            else:
                price = f"{stack.price(symbol) * Decimal('0.8'):.2f}"
                resting = {**order, "type": "LIMIT", "timeInForce": "GTC", "price": price}
                placed = bn.ok("POST", "/api/v3/order", resting)
                clash_open.add(signal_id)
            foreign[placed["orderId"]] = signal_id
        stack.release("worker1", "worker2")
        verdict = judge("ids-taken", stack, sent, timeout=DRAIN, foreign=frozenset(foreign),
                        may_refuse=frozenset(clash_open))  # fmt: skip
        still_open = {
            o["orderId"]
            for symbol in SYMBOLS
            for o in bn.ok("GET", "/api/v3/openOrders", {"symbol": symbol})
        }
    statuses = stack.statuses()
    adopted = [o for o in stack.orders() if o.venue_id in foreign]
    verdict.extra = {
        "foreign": len(foreign),
        "refused_clash": sum(1 for sid in clash_open if statuses[sid] in ("refused", "failed")),
        "adopted_foreign": len(adopted),
    }
    checked(verdict, report, stack)
    assert not adopted
    assert verdict.extra["refused_clash"] == len(clash_open)
    assert verdict.placed == N - len(clash_open)
    # The foreign open orders are not ours to cancel: they are still there.
    assert {oid for oid, sid in foreign.items() if sid in clash_open} <= still_open
