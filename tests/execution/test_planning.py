"""Planning is pure: signal + filters + price + position -> order intents with fixed ids."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.exchange.filters import (
    AlgoLimits,
    Market,
    NotionalRule,
    PercentPriceRule,
    PriceRule,
    QuantityRule,
    SymbolRules,
)
from app.exchange.ids import CLIENT_ALGO_ID, CLIENT_ORDER_ID, client_algo_id, client_order_id
from app.execution.planning import (
    Crossed,
    Levels,
    NotProtected,
    OrderIntent,
    Refused,
    plan_bracket,
    plan_close,
    plan_entry,
    signal_levels,
    stop_limit_price,
)
from app.execution.positions import FillData, net_received
from app.signals.schemas import Signal, parse_signal

D = Decimal
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FUTURES_ID = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
SPOT = SymbolRules(
    symbol="BTCUSDT", market=Market.SPOT, status="TRADING", base_asset="BTC", quote_asset="USDT",
    price=PriceRule(D("0.01"), D("1000000"), D("0.01")),
    lot=QuantityRule(D("0.00001"), D("9000"), D("0.00001")),
    market_lot=QuantityRule(D("0"), D("120"), D("0.00001"), "MARKET_LOT_SIZE"),
    notional=NotionalRule(D("5"), D("0")), oco_allowed=True,
)  # fmt: skip
USDM = SymbolRules(
    symbol="BTCUSDT", market=Market.USDM, status="TRADING", base_asset="BTC", quote_asset="USDT",
    price=PriceRule(D("556.8"), D("4529764"), D("0.1")),
    lot=QuantityRule(D("0.001"), D("1000"), D("0.001")),
    notional=NotionalRule(D("100"), D("0"), filter="MIN_NOTIONAL"),
)  # fmt: skip
RULES = {"spot": SPOT, "usdm": USDM}
LIMITS = AlgoLimits(min_duration=10)
PRICE = D("65000")
SID = "0190a3b1c2d3e4f5a6b7c8d9e0f1a2b3"


def signal(**fields: Any) -> Signal:
    raw = {"action": "entry", "symbol": "BTCUSDT", "side": "buy", **fields}
    return parse_signal(raw, now=NOW, twap_min_duration=10, twap_max_duration=86_400)


def entry(market: str = "spot", **fields: Any) -> OrderIntent:
    plan = plan_entry(
        signal(market=market, **fields), SID, rules=RULES[market], price=PRICE, limits=LIMITS
    )
    (intent,) = plan.intents
    return intent


@pytest.mark.parametrize(
    ("market", "fields", "expected"),
    [
        ("spot", {"quantity": "0.0123456"}, {"kind": "market", "quantity": D("0.01234")}),
        ("spot", {"quote_quantity": "650"}, {"kind": "market", "quote_quantity": D("650")}),
        ("usdm", {"quantity": "0.0129"}, {"kind": "market", "quantity": D("0.012")}),
        # USD-M has no quoteOrderQty: the quote amount becomes a quantity at the mark price.
        ("usdm", {"quote_quantity": "1000"}, {"kind": "market", "quantity": D("0.015")}),
        (
            "spot",
            {"quantity": "0.01", "execution": {"type": "limit", "price": "64000.005"}},
            {"kind": "limit", "price": D("64000.00"), "quantity": D("0.01")},
        ),
        (
            "usdm",
            {"quantity": "0.02", "execution": {"type": "limit", "price": "64000.05"}},
            {"kind": "limit", "price": D("64000.0")},
        ),
        (
            "spot",
            {"quantity": "0.1", "execution": {"type": "twap", "duration": 600}},
            {"kind": "twap", "duration": 600, "limit_price": None, "reduce_only": False},
        ),
        (
            "usdm",
            {
                "quantity": "0.5",
                "execution": {"type": "twap", "duration": 900, "limit_price": "64000.07"},
            },
            {"kind": "twap", "limit_price": D("64000.0")},
        ),
        (
            "usdm",
            {"quantity": "0.5", "execution": {"type": "vp", "urgency": "high"}},
            {"kind": "vp", "urgency": "HIGH"},
        ),
    ],
)
def test_entry_becomes_one_order_per_execution_type(
    market: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    intent = entry(market, **fields)
    assert (intent.leg, intent.side, intent.market, intent.symbol) == (
        "entry", "BUY", market, "BTCUSDT",
    )  # fmt: skip
    for name, value in expected.items():
        assert getattr(intent, name) == value, name
    if intent.is_algo:
        assert intent.client_id == client_algo_id(SID, "entry")
        assert CLIENT_ALGO_ID.match(intent.client_id) and len(intent.client_id) == 32
    else:
        assert intent.client_id == client_order_id(SID, "entry")
        assert CLIENT_ORDER_ID.match(intent.client_id)
        assert re.match(FUTURES_ID, intent.client_id)


def test_client_ids_are_deterministic_and_differ_by_signal() -> None:
    a = plan_entry(signal(quantity="0.01"), SID, rules=SPOT, price=PRICE, limits=LIMITS)
    b = plan_entry(signal(quantity="0.01"), SID, rules=SPOT, price=PRICE, limits=LIMITS)
    c = plan_entry(signal(quantity="0.01"), SID[::-1], rules=SPOT, price=PRICE, limits=LIMITS)
    assert a.intents[0].client_id == b.intents[0].client_id != c.intents[0].client_id


@pytest.mark.parametrize(
    ("market", "fields", "message"),
    [
        ("spot", {"quantity": "0.000001"}, "below minQty"),
        ("spot", {"quantity": "0.00005"}, "notional"),  # 3.25 USDT < 5
        ("usdm", {"quantity": "0.001"}, "notional"),  # 65 USDT < 100
        ("spot", {"quantity": "0.01", "execution": {"type": "twap", "duration": 600}}, "TWAP"),
        (
            "usdm",
            {"quantity": "0.1", "execution": {"type": "vp", "urgency": "low"}},
            "at least 10000",
        ),
    ],
)
def test_entries_breaking_filters_or_algo_limits_are_refused(
    market: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(Refused, match=message):
        entry(market, **fields)


def test_entry_with_levels_records_them_as_the_pending_bracket() -> None:
    plan = plan_entry(
        signal(quantity="0.01", take_profit="70000", stop_loss={"stop_price": "60000"}),
        SID, rules=SPOT, price=PRICE, limits=LIMITS,
    )  # fmt: skip
    assert plan.levels == Levels(D("70000"), D("60000"), None, "market", "exit")
    assert Levels.from_json(plan.levels.to_json()) == plan.levels
    assert Levels(D("70000"), D("60000"), D("59000")).merged(Levels(take_profit=D("71000"))) == (
        Levels(D("71000"), D("60000"), D("59000"))
    )
    assert Levels(D("70000"), D("60000"), D("59000")).merged(Levels(stop_price=D("61000"))) == (
        Levels(D("70000"), D("61000"), None)
    )


def bracket(**overrides: Any) -> list[OrderIntent] | NotProtected:
    values: dict[str, Any] = {
        "signal_id": SID, "leg": "bracket", "market": "spot", "symbol": "BTCUSDT",
        "rules": SPOT, "price": PRICE, "position_side": "BUY", "quantity": D("0.0099"),
        "levels": Levels(D("70000"), D("60000")), "slippage": D("0.005"),
    }  # fmt: skip
    values.update(overrides)
    return plan_bracket(**values)


def test_long_spot_bracket_is_a_sell_oco_with_take_profit_above_and_a_market_stop_below() -> None:
    result = bracket()
    assert isinstance(result, list)
    (oco,) = result
    assert (oco.kind, oco.side, oco.quantity) == ("oco", "SELL", D("0.0099"))
    assert oco.above is not None and oco.below is not None
    assert (oco.above.type, oco.above.price) == ("LIMIT_MAKER", D("70000"))
    # The default stop is STOP_LOSS: a market sell once triggered, so a gap cannot leave it
    # resting unfilled.
    assert (oco.below.type, oco.below.stop_price, oco.below.price) == (
        "STOP_LOSS", D("60000"), None,
    )  # fmt: skip
    assert oco.below.time_in_force is None


def test_stop_limit_bracket_when_the_signal_asks_for_one() -> None:
    result = bracket(levels=Levels(D("70000"), D("60000"), stop_type="limit"))
    assert isinstance(result, list)
    (oco,) = result
    assert (oco.kind, oco.side, oco.quantity) == ("oco", "SELL", D("0.0099"))
    assert oco.above is not None and oco.below is not None
    assert (oco.above.type, oco.above.price) == ("LIMIT_MAKER", D("70000"))
    assert (oco.below.type, oco.below.stop_price, oco.below.time_in_force) == (
        "STOP_LOSS_LIMIT", D("60000"), "GTC",
    )  # fmt: skip
    # No limit given: stop x (1 - 0.5 %), never above the stop.
    assert oco.below.price == D("59700.00")
    assert oco.above.price is not None and oco.below.stop_price is not None
    assert oco.above.price > PRICE > oco.below.stop_price >= oco.below.price
    ids = {oco.client_id, oco.above.client_id, oco.below.client_id}
    assert ids == {client_order_id(SID, leg) for leg in ("bracket", "bracket-tp", "bracket-sl")}
    assert all(CLIENT_ORDER_ID.match(i) for i in ids)


def test_short_spot_bracket_is_a_buy_oco_mirrored() -> None:
    result = bracket(position_side="SELL", levels=Levels(D("60000"), D("70000"), D("70100")))
    assert isinstance(result, list)
    (oco,) = result
    assert oco.side == "BUY" and oco.above is not None and oco.below is not None
    assert (oco.above.type, oco.above.stop_price, oco.above.price) == (
        "STOP_LOSS_LIMIT", D("70000"), D("70100"),
    )  # fmt: skip
    assert (oco.below.type, oco.below.price) == ("LIMIT_MAKER", D("60000"))
    assert oco.below.price is not None
    assert oco.above.stop_price is not None and oco.above.price is not None
    assert oco.below.price < PRICE < oco.above.stop_price <= oco.above.price


@pytest.mark.parametrize(
    ("levels", "kind", "order_type_fields"),
    [
        (Levels(take_profit=D("70000")), "take_profit_limit", (D("70000"), D("70000"))),
        (Levels(stop_price=D("60000")), "stop_loss", (None, D("60000"))),
        (
            Levels(stop_price=D("60000"), stop_type="limit"),
            "stop_loss_limit",
            (D("59700.00"), D("60000")),
        ),
    ],
)
def test_one_known_level_gives_a_single_spot_order(
    levels: Levels, kind: str, order_type_fields: tuple[Decimal | None, Decimal]
) -> None:
    result = bracket(levels=levels)
    assert isinstance(result, list)
    (order,) = result
    assert order.kind == kind and order.side == "SELL"
    assert (order.price, order.stop_price) == order_type_fields
    assert order.client_id == client_order_id(SID, order.leg)


@pytest.mark.parametrize(
    ("overrides", "note"),
    [
        ({"quantity": D("0.00005")}, "too small to protect"),  # 3 USDT < 5 min notional
        ({"quantity": D("0.000004")}, "too small to protect"),  # below minQty
        ({"price": D("71000")}, "take-profit 70000 is not above the last price"),
        ({"price": D("59000")}, "stop 60000 is not below the last price"),
        ({"market": "usdm", "rules": USDM, "quantity": D("0.0009")}, "too small to protect"),
        ({"levels": Levels()}, "no take-profit"),
    ],
)
def test_brackets_that_cannot_be_placed_say_why(overrides: dict[str, Any], note: str) -> None:
    result = bracket(**overrides)
    assert isinstance(result, NotProtected) and note in result.note


@pytest.mark.parametrize(
    ("overrides", "level"),
    [
        ({"price": D("59000")}, "stop"),  # a long's stop at or above the market
        ({"price": D("60000")}, "stop"),
        ({"price": D("71000")}, "take_profit"),
        (
            {
                "position_side": "SELL",
                "levels": Levels(D("60000"), D("70000")),
                "price": D("70500"),
            },
            "stop",
        ),
        ({"market": "usdm", "rules": None, "price": D("59000")}, "stop"),
    ],
)
def test_a_level_the_market_already_passed_is_crossed(
    overrides: dict[str, Any], level: str
) -> None:
    if overrides.get("rules", SPOT) is None:
        overrides["rules"] = USDM
    result = bracket(**overrides)
    assert isinstance(result, Crossed) and result.level == level


def test_prices_outside_percent_price_by_side_fall_back_to_what_can_rest() -> None:
    # Asks may be at most 5x the reference: a take-profit at 400,000 would be refused.
    rules = replace(SPOT, percent_price=PercentPriceRule(D("5"), D("0.2"), D("5"), D("0.2")))
    result = bracket(rules=rules, levels=Levels(D("400000"), D("60000")))
    assert isinstance(result, list)
    (stop,) = result
    assert (stop.kind, stop.stop_price) == ("stop_loss", D("60000"))
    assert "take-profit left out" in stop.facts["notes"][0]
    # A stop-limit whose limit is below 0.2x the reference goes out as a market stop.
    low = bracket(
        rules=rules, price=D("300000"),
        levels=Levels(D("400000"), D("61000"), D("50000"), stop_type="limit"),
    )  # fmt: skip
    assert isinstance(low, list)
    (oco,) = low
    assert oco.below is not None and oco.below.type == "STOP_LOSS"
    # A take-profit alone that cannot rest protects nothing: said so.
    alone = bracket(rules=rules, levels=Levels(take_profit=D("400000")))
    assert isinstance(alone, NotProtected) and "PERCENT_PRICE_BY_SIDE" in alone.note


def test_usdm_bracket_is_two_reduce_only_orders_for_the_quantity_held() -> None:
    result = bracket(market="usdm", rules=USDM, levels=Levels(D("70000.04"), D("60000.01")))
    assert isinstance(result, list)
    tp, sl = result
    assert (tp.kind, tp.order_type, tp.side, tp.close_position, tp.reduce_only) == (
        "conditional", "TAKE_PROFIT_MARKET", "SELL", False, True,
    )  # fmt: skip
    assert (sl.order_type, sl.stop_price) == ("STOP_MARKET", D("60000.1"))  # SELL rounds up
    assert tp.stop_price == D("70000.1")
    for order in (tp, sl):
        # Never closePosition: it closes every share of the symbol and allows one per side.
        assert order.quantity == D("0.009") and "close_position" not in order.extra()
        assert order.extra()["reduce_only"] is True
        assert re.match(FUTURES_ID, order.client_id)
    assert tp.client_id != sl.client_id


def test_bracket_is_sized_to_fills_net_of_base_asset_fees_rounded_down() -> None:
    fills = [
        (FillData("1", D("65000"), D("0.006"), D("390"), D("0.000006"), "BTC"), "BTC"),
        (FillData("2", D("65010"), D("0.004"), D("260.04"), D("0.000004"), "BTC"), "BTC"),
        (FillData("3", D("65020"), D("0.001"), D("65.02"), D("0.02"), "BNB"), "BTC"),
    ]
    received, gross, quote = net_received(fills, market="spot", side="BUY")
    assert (gross, received, quote) == (D("0.011"), D("0.01099"), D("715.06"))
    result = bracket(quantity=received + D("0.000000009"))
    assert isinstance(result, list) and result[0].quantity == D("0.01099")
    # A sell entry, or USD-M, holds what it traded.
    assert net_received(fills, market="usdm", side="BUY")[0] == D("0.011")


@pytest.mark.parametrize(
    ("market", "execution", "kind", "reduce_only"),
    [
        ("spot", None, "market", False),
        ("usdm", None, "market", True),
        ("spot", {"type": "twap", "duration": 600}, "twap", False),
        ("usdm", {"type": "twap", "duration": 600}, "twap", True),
        ("usdm", {"type": "limit", "price": "66000"}, "limit", True),
    ],
)
def test_close_sells_what_a_long_holds(
    market: str, execution: dict[str, Any] | None, kind: str, reduce_only: bool
) -> None:
    fields: dict[str, Any] = {"action": "exit", "market": market}
    if execution:
        fields["execution"] = execution
    sig = parse_signal({"symbol": "BTCUSDT", **fields}, now=NOW, twap_min_duration=10)
    intent = plan_close(
        sig, SID, leg="exit", rules=RULES[market], price=PRICE, quantity=D("0.5004"),
        side="SELL", limits=LIMITS,
    )  # fmt: skip
    assert (intent.kind, intent.side, intent.quantity, intent.reduce_only) == (
        kind, "SELL", D("0.5004") if market == "spot" else D("0.500"), reduce_only,
    )  # fmt: skip


def test_standalone_tp_and_sl_take_their_level_from_the_limit_price() -> None:
    tp = parse_signal(
        {"action": "tp", "symbol": "BTCUSDT", "execution": {"type": "limit", "price": "70000"}},
        now=NOW,
    )
    sl = parse_signal(
        {"action": "sl", "symbol": "BTCUSDT", "execution": {"type": "limit", "price": "60000"}},
        now=NOW,
    )
    market = parse_signal({"action": "tp", "symbol": "BTCUSDT"}, now=NOW)
    assert signal_levels(tp) == Levels(take_profit=D("70000"))
    assert signal_levels(sl) == Levels(stop_price=D("60000"))
    assert signal_levels(market).empty


def test_stop_limit_never_ends_on_the_wrong_side_of_the_stop() -> None:
    assert stop_limit_price(SPOT, D("60000"), "SELL", D("0"), None) == D("60000")
    assert stop_limit_price(SPOT, D("60000"), "SELL", D("0.01"), D("61000")) == D("60000")
    assert stop_limit_price(SPOT, D("60000"), "BUY", D("0.01"), None) == D("60600.00")


def test_stop_limit_price_off_the_tick_rounds_toward_filling() -> None:
    # A protective stop-limit must stay as likely to fill as asked: a SELL limit rounds
    # down, a BUY limit up (the opposite of a take-profit's "never worse" rounding).
    assert stop_limit_price(SPOT, D("60000"), "SELL", D("0"), D("59900.005")) == D("59900.00")
    assert stop_limit_price(SPOT, D("60000"), "BUY", D("0"), D("60100.001")) == D("60100.01")


def test_a_limit_entry_outside_percent_price_is_refused_before_sending() -> None:
    rules = replace(USDM, percent_price=PercentPriceRule(D("1.05"), D("0.95"), D("1.05"), D("0.95"),
                                                          "PERCENT_PRICE"))  # fmt: skip
    far = signal(market="usdm", quantity="0.01", execution={"type": "limit", "price": "60000"})
    with pytest.raises(Refused, match="PERCENT_PRICE"):
        plan_entry(far, SID, rules=rules, price=PRICE, limits=LIMITS)
    near = signal(market="usdm", quantity="0.01", execution={"type": "limit", "price": "63000"})
    (intent,) = plan_entry(near, SID, rules=rules, price=PRICE, limits=LIMITS).intents
    assert (intent.kind, intent.price) == ("limit", D("63000"))
