"""Sizing by balance and by risk is pure: funds, percent, price and filters -> a quantity.

Properties over generated accounts, prices and filters: the quantity never costs more than the
free balance (spot) or the available margin with its fee (usdm), never exceeds the max-notional
cap, sits on the step size at or above the minimum; a size below the minimum is refused with
the filter named, never rounded up.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.exchange.filters import Market, NotionalRule, QuantityRule, SymbolRules
from app.execution.planning import Refused
from app.execution.sizing import Funds, Method, affordable, size
from tests.execution.test_planning import SPOT, USDM

D = Decimal


def spot_funds(free: str, equity: str = "0", fee: str = "0.001", asset: str = "USDT") -> Funds:
    return Funds(free=D(free), asset=asset, equity=D(equity), fee_rate=D(fee))


def test_balance_percent_on_spot_spends_that_share_of_the_free_quote_rounded_down() -> None:
    sized = size(
        Method.BALANCE, D("10"), market="spot", side="BUY", price=D("65000"),
        funds=spot_funds("10000"), rules=SPOT, market_order=True,
    )  # fmt: skip
    # 1000 USDT / 65000 = 0.0153846...: down to the 0.00001 step.
    assert sized.quantity == D("0.01538")
    assert sized.wanted > sized.quantity and sized.capped_by == []
    assert sized.as_json()["free"] == "10000" and sized.as_json()["free_asset"] == "USDT"


def test_balance_percent_on_spot_sell_spends_that_share_of_the_free_base() -> None:
    sized = size(
        Method.BALANCE, D("50"), market="spot", side="SELL", price=D("65000"),
        funds=spot_funds("0.3", asset="BTC"), rules=SPOT, market_order=True,
    )  # fmt: skip
    assert sized.quantity == D("0.15")


def test_balance_percent_on_usdm_is_margin_times_leverage_less_the_entry_fee() -> None:
    funds = Funds(free=D("1000"), asset="USDT", equity=D("1000"), fee_rate=D("0.0004"), leverage=10)
    sized = size(
        Method.BALANCE, D("50"), market="usdm", side="SELL", price=D("65000"),
        funds=funds, rules=USDM, market_order=True,
    )  # fmt: skip
    # 500 x 10 / (1 + 10 x 0.0004) = 4980.08 USDT of notional: 0.0766 -> 0.076 at 65000.
    assert sized.quantity == D("0.076")
    notional = sized.quantity * D("65000")
    assert notional / 10 + notional * D("0.0004") <= D("500")


def test_risk_percent_divides_the_risk_by_the_stop_distance_plus_fees() -> None:
    sized = size(
        Method.RISK, D("1"), market="spot", side="BUY", price=D("65000"),
        funds=spot_funds("10000", equity="10000"), rules=SPOT, market_order=True,
        stop_price=D("60000"),
    )  # fmt: skip
    # 100 USDT / (5000 + 0.001 x (65000 + 60000)) = 0.0195121...
    assert sized.quantity == D("0.01951")
    loss = sized.quantity * (D("5000") + D("0.001") * D("125000"))
    assert loss <= D("100")


def test_risk_percent_needs_the_stop_on_the_losing_side_of_the_entry() -> None:
    with pytest.raises(Refused, match=r"stop_price \(66000\) is not below the entry"):
        size(
            Method.RISK, D("1"), market="spot", side="BUY", price=D("65000"),
            funds=spot_funds("10000", equity="10000"), rules=SPOT, market_order=True,
            stop_price=D("66000"),
        )  # fmt: skip


def test_max_notional_caps_the_size_and_says_so() -> None:
    sized = size(
        Method.BALANCE, D("100"), market="spot", side="BUY", price=D("65000"),
        funds=spot_funds("10000"), rules=SPOT, market_order=True, max_notional=D("500"),
    )  # fmt: skip
    assert sized.quantity == D("0.00769") and sized.capped_by == ["max notional"]
    assert "capped by max notional" in sized.describe()


def test_risk_larger_than_the_free_balance_is_capped_by_the_balance() -> None:
    sized = size(
        Method.RISK, D("10"), market="spot", side="BUY", price=D("65000"),
        funds=spot_funds("1000", equity="100000"), rules=SPOT, market_order=True,
        stop_price=D("64000"),
    )  # fmt: skip
    assert sized.quantity == D("0.01538") and sized.capped_by == ["the free balance"]


def test_below_the_minimum_notional_is_refused_never_rounded_up() -> None:
    with pytest.raises(Refused) as caught:
        size(
            Method.BALANCE, D("100"), market="spot", side="BUY", price=D("65000"),
            funds=spot_funds("3"), rules=SPOT, market_order=True,
        )  # fmt: skip
    reason = str(caught.value)
    assert "100% of free 3 USDT" in reason and "must be at least 5 USDT [NOTIONAL]" in reason
    assert "never rounded up" in reason


def test_below_the_minimum_quantity_is_refused_never_rounded_up() -> None:
    with pytest.raises(Refused, match=r"below minQty 0.001 \[LOT_SIZE\]"):
        size(
            Method.BALANCE, D("1"), market="usdm", side="BUY", price=D("65000"),
            funds=Funds(D("1000"), "USDT", D("1000"), D("0.0004"), 5),
            rules=USDM, market_order=True,
        )  # fmt: skip


# -- properties -----------------------------------------------------------------------------

STEPS = [D("1"), D("0.1"), D("0.001"), D("0.00001")]
amounts = st.decimals(min_value=D("0"), max_value=D("10000000"), places=4, allow_nan=False)
prices = st.decimals(min_value=D("0.01"), max_value=D("200000"), places=2, allow_nan=False)
percents = st.decimals(min_value=D("0.01"), max_value=D("100"), places=2, allow_nan=False)


@st.composite
def symbol_rules(draw: st.DrawFn) -> SymbolRules:
    step = draw(st.sampled_from(STEPS))
    min_qty = step * draw(st.integers(min_value=1, max_value=1000))
    max_qty = draw(st.sampled_from([D(0), D(100), D(9000)]))
    min_notional = draw(st.sampled_from([D(0), D(5), D(100)]))
    market: Market = draw(st.sampled_from([Market.SPOT, Market.USDM]))
    return SymbolRules(
        symbol="XUSDT", market=market, status="TRADING", base_asset="X", quote_asset="USDT",
        lot=QuantityRule(min_qty, max_qty, step),
        notional=NotionalRule(min_notional, D(0)),
    )  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    rules=symbol_rules(),
    method=st.sampled_from(list(Method)),
    side=st.sampled_from(["BUY", "SELL"]),
    percent=percents,
    price=prices,
    free=amounts,
    equity=amounts,
    fee=st.sampled_from([D(0), D("0.0004"), D("0.001")]),
    leverage=st.integers(min_value=1, max_value=125),
    stop_share=st.decimals(min_value=D("0.001"), max_value=D("0.5"), places=3),
    max_notional=st.one_of(st.none(), amounts),
)
def test_sizing_never_spends_more_than_the_account_or_the_cap_and_never_rounds_up(
    rules: SymbolRules,
    method: Method,
    side: str,
    percent: Decimal,
    price: Decimal,
    free: Decimal,
    equity: Decimal,
    fee: Decimal,
    leverage: int,
    stop_share: Decimal,
    max_notional: Decimal | None,
) -> None:
    market = rules.market
    funds = Funds(free, "USDT" if side == "BUY" or market == "usdm" else "X", equity, fee,
                  leverage if market == "usdm" else 1)  # fmt: skip
    stop = price * (1 - stop_share) if side == "BUY" else price * (1 + stop_share)
    lot = rules.lot
    assert lot is not None and rules.notional is not None
    # What the signal asks for, then each cap, then down to the step: worked out here apart.
    spendable = affordable(market, side, price, funds)
    if method is Method.BALANCE:
        target = spendable * percent / 100
    else:
        target = equity * percent / 100 / (abs(price - stop) + fee * (price + stop))
    caps = [spendable]
    if max_notional is not None:
        caps.append(max_notional / price)
    if lot.max_qty > 0:  # 0: no maximum
        caps.append(lot.max_qty)
    target = min([target, *caps])
    floor = (target / lot.step_size).to_integral_value(rounding="ROUND_DOWN") * lot.step_size
    too_small = floor <= 0 or floor < lot.min_qty or floor * price < rules.notional.min_notional
    try:
        sized = size(
            method, percent, market=market, side=side, price=price, funds=funds, rules=rules,
            market_order=False, stop_price=stop, max_notional=max_notional,
        )  # fmt: skip
    except Refused as exc:
        reason = str(exc)
        assert too_small, reason
        # The filter named, and the promise kept.
        assert "minQty" in reason or "must be at least" in reason or "must be positive" in reason
        assert "never rounded up" in reason
        return
    assert not too_small and sized.quantity == floor
    q = sized.quantity
    assert q > 0 and q % lot.step_size == 0 and q >= lot.min_qty
    assert q <= sized.wanted  # rounded down, never up
    assert q * price >= rules.notional.min_notional
    if market == "spot" and side == "BUY":
        assert q * price <= free
    elif market == "spot":
        assert q <= free
    else:  # margin plus the entry's fee within the available margin
        assert q * price / leverage + q * price * fee <= free
    if max_notional is not None:
        assert q * price <= max_notional
    if lot.max_qty > 0:
        assert q <= lot.max_qty
    if method is Method.BALANCE:
        spendable = affordable(market, side, price, funds)
        assert q <= spendable * percent / 100
    else:
        risk = q * (abs(price - stop) + fee * (price + stop))
        assert risk <= equity * percent / 100
