"""Symbol filters, safe-side rounding (examples and properties) and algo limits."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.exchange.filters import (
    AlgoLimits,
    FilterViolation,
    Market,
    PricePurpose,
    PriceRule,
    QuantityRule,
    SymbolRules,
    check_notional,
    check_percent_price,
    check_twap,
    check_vp,
    parse_exchange_info,
    prepare_order,
    price_rounding,
    round_price,
    round_quantity,
    to_wire,
)
from tests.exchange import samples
from tests.exchange.fake import make_settings

D = Decimal
SPOT = parse_exchange_info(json.loads(samples.SPOT_EXCHANGE_INFO), Market.SPOT)["BTCUSDT"]
USDM = parse_exchange_info(json.loads(samples.FUTURES_EXCHANGE_INFO), Market.USDM)["BTCUSDT"]


def test_spot_exchange_info_is_parsed_with_every_filter_we_use() -> None:
    assert SPOT.price == PriceRule(D("0.01"), D("1000000"), D("0.01"))
    assert SPOT.lot is not None and SPOT.lot.step_size == D("0.00001")
    assert SPOT.market_lot is not None and SPOT.market_lot.step_size == 0
    assert SPOT.notional is not None and SPOT.notional.filter == "NOTIONAL"
    assert SPOT.notional.min_notional == 5 and not SPOT.notional.apply_max_to_market
    assert SPOT.percent_price is not None and SPOT.percent_price.bid_up == 5
    assert SPOT.oco_allowed and SPOT.quote_asset == "USDT"


def test_futures_exchange_info_uses_notional_key_and_percent_price() -> None:
    assert USDM.notional is not None and USDM.notional.min_notional == 100
    assert USDM.notional.filter == "MIN_NOTIONAL"
    assert USDM.percent_price is not None and USDM.percent_price.filter == "PERCENT_PRICE"
    assert USDM.price is not None and USDM.price.tick_size == D("0.1")


def test_quantity_rounds_down_to_step_and_market_lot_step_zero_is_ignored() -> None:
    assert round_quantity(SPOT, D("0.123456789")) == D("0.12345")
    assert round_quantity(SPOT, D("0.123456789"), market_order=True) == D("0.12345")
    assert round_quantity(USDM, D("1.23456"), market_order=True) == D("1.234")


def test_quantity_bounds_name_the_filter_and_values() -> None:
    with pytest.raises(FilterViolation, match=r"quantity \(0.000009\) rounds to 0.*LOT_SIZE"):
        round_quantity(SPOT, D("0.000009"))
    with pytest.raises(FilterViolation, match=r"maxQty 82.5 \[MARKET_LOT_SIZE\]"):
        round_quantity(SPOT, D("100"), market_order=True)
    assert round_quantity(SPOT, D("100")) == D("100")  # LOT_SIZE allows 9000 for limits
    with pytest.raises(FilterViolation, match="must be positive"):
        round_quantity(SPOT, D("-1"))


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        ("BUY", "64000.019", "64000.01"),
        ("SELL", "64000.011", "64000.02"),
        ("BUY", "64000.01", "64000.01"),
        ("SELL", "64000.01", "64000.01"),
    ],
)
def test_prices_round_to_tick_on_the_safe_side(side: str, price: str, expected: str) -> None:
    assert round_price(SPOT, D(price), side) == D(expected)


def test_take_profit_sell_rounds_up_and_long_stop_rounds_up_toward_market() -> None:
    # A long's bracket is a SELL: take-profit never sells cheaper, the stop never risks more.
    assert round_price(USDM, D("70000.04"), "SELL") == D("70000.1")
    assert round_price(USDM, D("60000.04"), "SELL", field="stopPrice") == D("60000.1")
    # A short's stop is a BUY above the market: rounding down triggers no later than asked.
    assert round_price(USDM, D("70000.09"), "BUY", field="stopPrice") == D("70000.0")
    with pytest.raises(FilterViolation, match=r"stopPrice \(1\) must be at least minPrice"):
        round_price(USDM, D("1"), "BUY", field="stopPrice")


def test_stop_limit_price_rounds_toward_filling_and_other_prices_keep_their_side() -> None:
    # A long's protective stop-limit SELLs: its limit rounds down, so a fast market fills it.
    assert round_price(USDM, D("59900.07"), "SELL", purpose="stop_limit") == D("59900.0")
    # A short's protective stop-limit BUYs: its limit rounds up.
    assert round_price(USDM, D("70100.01"), "BUY", purpose="stop_limit") == D("70100.1")
    # Take-profit, stop trigger and plain limit prices: never worse than asked (unchanged).
    for purpose in ("limit", "take_profit", "stop"):
        assert round_price(USDM, D("70000.04"), "SELL", purpose=purpose) == D("70000.1")
        assert round_price(USDM, D("70000.09"), "BUY", purpose=purpose) == D("70000.0")
    assert round_price(USDM, D("70000.04"), "SELL") == D("70000.1")  # default: "limit"
    assert price_rounding("SELL", "stop_limit") == ROUND_DOWN
    assert price_rounding("buy", "stop_limit") == ROUND_UP
    assert price_rounding("BUY") == ROUND_DOWN and price_rounding("SELL") == ROUND_UP
    amounts = prepare_order(
        SPOT, side="SELL", quantity=D("0.001"), price=D("50000.019"), purpose="stop_limit"
    )
    assert amounts.price == D("50000.01")


def test_notional_and_percent_price_checks() -> None:
    check_notional(SPOT, D("0.0001"), D("50000"))  # 5 USDT: exactly the minimum
    with pytest.raises(FilterViolation, match=r"notional \(4.99995\) must be at least 5 USDT"):
        check_notional(SPOT, D("0.0001"), D("49999.5"))
    check_notional(SPOT, D("9000"), D("1000000"), market_order=True)  # max not applied to market
    with pytest.raises(FilterViolation, match="NOTIONAL"):
        check_notional(SPOT, D("9000"), D("1000000"))
    check_notional(USDM, D("0.001"), D("60000"), reduce_only=True)  # futures reduce-only exempt
    with pytest.raises(FilterViolation, match="MIN_NOTIONAL"):
        check_notional(USDM, D("0.001"), D("60000"))
    check_percent_price(SPOT, D("300000"), "BUY", D("60000"))
    with pytest.raises(FilterViolation, match="PERCENT_PRICE_BY_SIDE"):
        check_percent_price(SPOT, D("300001"), "BUY", D("60000"))
    with pytest.raises(FilterViolation, match="PERCENT_PRICE"):
        check_percent_price(USDM, D("56999"), "SELL", D("60000"))


def test_prepare_order_checks_the_rounded_values() -> None:
    amounts = prepare_order(SPOT, side="BUY", quantity=D("0.0001999"), price=D("50000.019"))
    assert amounts.quantity == D("0.00019") and amounts.price == D("50000.01")
    with pytest.raises(FilterViolation, match="NOTIONAL"):
        # 0.0001 * 49999.999 -> rounded price 49999.99 -> notional below 5
        prepare_order(SPOT, side="BUY", quantity=D("0.0001"), price=D("49999.999"))
    market = prepare_order(
        USDM, side="SELL", quantity=D("0.0025"), reference_price=D("60000"), market_order=True
    )
    assert market == type(market)(D("0.002"), None)


def test_decimals_go_on_the_wire_without_exponent() -> None:
    assert to_wire(D("1E-8")) == "0.00000001"
    assert to_wire(D("6.4E+4")) == "64000"
    assert to_wire(D("0.00100000")) == "0.001"
    assert to_wire(D("0E-8")) == "0"
    assert to_wire(D("-0")) == "0"


LIMITS = AlgoLimits.from_settings(make_settings(twap_min_duration=300))


def test_twap_limits_duration_notional_open_orders() -> None:
    ok = {"quantity": D("0.1"), "duration": 600, "reference_price": D("60000"), "open_algos": 0}
    check_twap(SPOT, LIMITS, **ok)  # type: ignore[arg-type]
    with pytest.raises(FilterViolation, match=r"duration \(299\) must be between 300 and 86400"):
        check_twap(SPOT, LIMITS, **ok | {"duration": 299})  # type: ignore[arg-type]
    with pytest.raises(FilterViolation, match=r"notional \(600 USDT\) must be at least 1000 USDT"):
        check_twap(SPOT, LIMITS, **ok | {"quantity": D("0.01")})  # type: ignore[arg-type]
    with pytest.raises(FilterViolation, match="must not exceed 100000 USDT"):
        check_twap(SPOT, LIMITS, **ok | {"quantity": D("2")})  # type: ignore[arg-type]
    check_twap(USDM, LIMITS, **ok | {"quantity": D("2")})  # type: ignore[arg-type]
    with pytest.raises(
        FilterViolation, match=r"open algo orders \(20\) must be below the maximum 20"
    ):
        check_twap(SPOT, LIMITS, **ok | {"open_algos": 20})  # type: ignore[arg-type]
    check_twap(
        SPOT,
        LIMITS,
        **ok
        | {
            "quantity": D("0.1"),
            "reference_price": D("0.5"),  # type: ignore[arg-type]
            "quote_rate": D("40000"),
        },
    )
    # 0.1 at 0.01 BTC = 0.001 BTC = 40 USDT at 40,000: refused, the figures in USDT and BTC.
    with pytest.raises(
        FilterViolation,
        match=r"notional \(40 USDT = 0.001 BTC at 40000 USDT per BTC\) must be at least 1000 USDT",
    ):
        check_twap(
            replace(SPOT, quote_asset="BTC"), LIMITS, **ok | {
                "reference_price": D("0.01"), "quote_rate": D("40000"),
            },  # type: ignore[arg-type]
        )  # fmt: skip


def test_futures_twap_needs_more_than_min_qty_per_minute() -> None:
    # 0.02 * 60 / 1200 = 0.001 = minQty: Binance wants strictly more.
    with pytest.raises(FilterViolation, match=r"quantity\*60/duration \(0.001\) must be greater"):
        check_twap(
            USDM,
            LIMITS,
            quantity=D("0.02"),
            duration=1200,
            reference_price=D("60000"),
            open_algos=0,
        )
    check_twap(
        USDM, LIMITS, quantity=D("0.021"), duration=1200, reference_price=D("60000"), open_algos=0
    )


def test_vp_has_its_own_bounds_on_usdm_and_spot() -> None:
    check_vp(USDM, LIMITS, quantity=D("0.2"), reference_price=D("60000"), open_algos=9)
    with pytest.raises(FilterViolation, match="must be at least 10000 USDT"):
        check_vp(USDM, LIMITS, quantity=D("0.1"), reference_price=D("60000"), open_algos=0)
    check_vp(USDM, LIMITS, quantity=D("5"), reference_price=D("60000"), open_algos=0)
    # Spot VP (2026-10-09): the VP minimum, and the spot maximum (100,000 USDT).
    check_vp(SPOT, LIMITS, quantity=D("1"), reference_price=D("60000"), open_algos=0)
    with pytest.raises(FilterViolation, match="must be at least 10000 USDT"):
        check_vp(SPOT, LIMITS, quantity=D("0.1"), reference_price=D("60000"), open_algos=0)
    with pytest.raises(FilterViolation, match="must not exceed 100000 USDT"):
        check_vp(SPOT, LIMITS, quantity=D("5"), reference_price=D("60000"), open_algos=0)
    with pytest.raises(FilterViolation, match="maximum 10"):
        check_vp(USDM, LIMITS, quantity=D("0.2"), reference_price=D("60000"), open_algos=10)


# ---- properties ------------------------------------------------------------------------

steps = st.sampled_from([D(s) for s in ("1", "0.1", "0.001", "0.00001", "0.00000001", "5", "0.25")])
quantities = st.decimals(
    min_value=D("0.00000001"),
    max_value=D("1000000"),
    places=10,
    allow_nan=False,
    allow_infinity=False,
)
prices = st.decimals(
    min_value=D("0.00000001"),
    max_value=D("10000000"),
    places=10,
    allow_nan=False,
    allow_infinity=False,
)


def _rules(step: Decimal, min_qty: Decimal, max_qty: Decimal, tick: Decimal) -> SymbolRules:
    return SymbolRules(
        symbol="TEST",
        market=Market.SPOT,
        status="TRADING",
        base_asset="B",
        quote_asset="Q",
        lot=QuantityRule(min_qty, max_qty, step),
        market_lot=QuantityRule(D(0), D(0), D(0), "MARKET_LOT_SIZE"),
        price=PriceRule(D(0), D(0), tick),
    )


@settings(max_examples=300, deadline=None)
@given(
    qty=quantities,
    step=steps,
    min_mult=st.integers(0, 1000),
    max_mult=st.integers(1, 10**9),
    market=st.booleans(),
)
def test_rounded_quantity_never_exceeds_request_and_is_a_step_multiple_within_bounds(
    qty: Decimal, step: Decimal, min_mult: int, max_mult: int, market: bool
) -> None:
    min_qty, max_qty = step * min_mult, step * (min_mult + max_mult)
    rules = _rules(step, min_qty, max_qty, D("0.01"))
    try:
        rounded = round_quantity(rules, qty, market_order=market)
    except FilterViolation as exc:
        floor = (qty // step) * step
        assert floor < min_qty or floor <= 0 or floor > max_qty, exc
        return
    assert isinstance(rounded, Decimal)
    assert rounded <= qty
    assert rounded % step == 0
    assert qty - rounded < step
    assert min_qty <= rounded <= max_qty
    assert "E" not in to_wire(rounded) and D(to_wire(rounded)) == rounded


@settings(max_examples=300, deadline=None)
@given(price=prices, tick=steps, side=st.sampled_from(["BUY", "SELL"]))
def test_rounded_price_is_a_tick_multiple_on_the_safe_side(
    price: Decimal, tick: Decimal, side: str
) -> None:
    rules = _rules(D("0.001"), D(0), D(0), tick)
    rounded = round_price(rules, price, side)
    assert isinstance(rounded, Decimal)
    assert rounded % tick == 0
    assert abs(rounded - price) < tick
    assert rounded <= price if side == "BUY" else rounded >= price
    assert "E" not in to_wire(rounded)


@settings(max_examples=300, deadline=None)
@given(
    price=prices,
    tick=steps,
    side=st.sampled_from(["BUY", "SELL", "buy", "sell"]),
    purpose=st.sampled_from(["limit", "take_profit", "stop", "stop_limit"]),
)
def test_rounded_price_direction_follows_side_and_purpose(
    price: Decimal, tick: Decimal, side: str, purpose: PricePurpose
) -> None:
    """Stop-limit limits round toward filling (SELL down, BUY up); every other price rounds
    to the side never worse than asked (SELL up, BUY down). Always within one tick."""
    rules = _rules(D("0.001"), D(0), D(0), tick)
    rounded = round_price(rules, price, side, purpose=purpose)
    assert rounded % tick == 0 and abs(rounded - price) < tick
    sell = side.upper() == "SELL"
    down = sell if purpose == "stop_limit" else not sell
    assert rounded <= price if down else rounded >= price
    if purpose == "stop_limit":
        assert rounded == round_price(rules, price, "BUY" if sell else "SELL")  # the mirror


@settings(max_examples=200, deadline=None)
@given(qty=quantities, price=prices)
def test_prepared_order_satisfies_every_filter_or_is_refused(qty: Decimal, price: Decimal) -> None:
    try:
        amounts = prepare_order(SPOT, side="SELL", quantity=qty, price=price, reference_price=price)
    except FilterViolation:
        return
    assert amounts.price is not None
    assert amounts.quantity % D("0.00001") == 0 and amounts.price % D("0.01") == 0
    assert D("0.00001") <= amounts.quantity <= D("9000")
    assert D(5) <= amounts.quantity * amounts.price <= D(9000000)
