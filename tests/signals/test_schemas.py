"""The signal contract: normalisation and validation, table-driven, plus number properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from app.exchange.filters import Market
from app.signals.schemas import (
    InvalidSignal,
    MarginType,
    Signal,
    normalize_symbol,
    parse_decimal,
    parse_signal,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def parse(raw: dict[str, Any]) -> Signal:
    return parse_signal(raw, now=NOW, twap_min_duration=300, twap_max_duration=86_400)


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidSignal) as caught:
        parse(raw)
    return {e.field: e.message for e in caught.value.errors}


def base(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"action": "entry", "symbol": "BTCUSDT", "side": "buy", "quantity": "1"}
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


# -- symbols -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "symbol", "perpetual"),
    [
        ("BTCUSDT", "BTCUSDT", False),
        ("btcusdt", "BTCUSDT", False),
        ("BINANCE:BTCUSDT", "BTCUSDT", False),
        ("binance:ethusdt", "ETHUSDT", False),
        ("BTC/USDT", "BTCUSDT", False),
        ("BTC-USDT", "BTCUSDT", False),
        (" BTCUSDT ", "BTCUSDT", False),
        ("BTCUSDT.P", "BTCUSDT", True),
        ("BINANCE:ETHUSDT.P", "ETHUSDT", True),
        ("1000pepeusdt.p", "1000PEPEUSDT", True),
    ],
)
def test_symbol_spellings_normalise_to_binance_symbols(
    raw: str, symbol: str, perpetual: bool
) -> None:
    assert normalize_symbol(raw) == (symbol, perpetual)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("COINBASE:BTCUSD", "COINBASE is not Binance"),
        ("BYBIT:BTCUSDT.P", "BYBIT is not Binance"),
        ("BTC", "must be a Binance symbol"),
        ("BTC$USDT", "must be a Binance symbol"),
        ("", "must be a Binance symbol"),
        ("{{ticker}}", "must be a Binance symbol"),
    ],
)
def test_symbols_from_other_exchanges_or_malformed_are_refused(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("$", r"\$")):
        normalize_symbol(raw)


@pytest.mark.parametrize(
    ("symbol", "market", "expected"),
    [
        ("BTCUSDT", None, Market.SPOT),
        ("BTCUSDT.P", None, Market.USDM),
        ("BINANCE:BTCUSDT.P", "usdm", Market.USDM),
        ("BTCUSDT", "USDM", Market.USDM),
        ("BTCUSDT", " Spot ", Market.SPOT),
    ],
)
def test_market_comes_from_the_field_or_the_perpetual_suffix(
    symbol: str, market: str | None, expected: Market
) -> None:
    sig = parse(base(symbol=symbol, market=market))
    assert (sig.symbol, sig.market) == ("BTCUSDT", expected)


def test_a_perpetual_symbol_with_market_spot_is_refused() -> None:
    assert "usdm" in problems(base(symbol="BTCUSDT.P", market="spot"))["market"]


# -- names, sizes, executions ---------------------------------------------------------------


@pytest.mark.parametrize("side", ["buy", "BUY", "Buy", " buy "])
def test_sides_are_case_insensitive(side: str) -> None:
    assert parse(base(side=side)).side == "buy"


@pytest.mark.parametrize(
    ("execution", "expected"),
    [
        (None, {"type": "market"}),
        ("market", {"type": "market"}),
        ({"type": "MARKET"}, {"type": "market"}),
        ({"type": "limit", "price": "100.5"}, {"type": "limit", "price": "100.5"}),
        ({"type": "twap", "duration": "1800"}, {"type": "twap", "duration": 1800}),
        (
            {"type": "Twap", "duration": 300, "limit_price": 64000},
            {"type": "twap", "duration": 300, "limit_price": "64000"},
        ),
    ],
)
def test_execution_types_normalise(execution: Any, expected: dict[str, Any]) -> None:
    assert parse(base(execution=execution)).payload()["execution"] == expected


def test_vp_is_accepted_on_usdm_with_case_insensitive_urgency() -> None:
    sig = parse(base(symbol="BTCUSDT.P", execution={"type": "vp", "urgency": "high"}))
    assert sig.payload()["execution"] == {"type": "vp", "urgency": "HIGH"}


def test_vp_is_accepted_on_spot_too() -> None:
    """Binance added spot VP (POST /sapi/v1/algo/spot/newOrderVp) on 2026-10-09."""
    sig = parse(base(execution={"type": "vp", "urgency": "low", "limit_price": "64000"}))
    assert sig.market is not None and sig.market.value == "spot"
    assert sig.payload()["execution"] == {"type": "vp", "urgency": "LOW", "limit_price": "64000"}


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"side": "hold"}, "side", "buy, sell"),
        ({"side": None}, "side", "required"),
        ({"action": "open"}, "action", "entry, tp, sl, exit, cancel"),
        (
            {"quantity": None},
            "quantity",
            "exactly one of quantity, quote_quantity, balance_percent or risk_percent",
        ),
        ({"quote_quantity": "100"}, "quote_quantity", "exactly one"),
        ({"quantity": "0"}, "quantity", "greater than 0"),
        ({"quantity": "-0.5"}, "quantity", "greater than 0"),
        ({"quantity": "abc"}, "quantity", "must be a number"),
        ({"quantity": True}, "quantity", "not true/false"),
        ({"quantity": "0.1234567890123456789"}, "quantity", "18 decimal places"),
        ({"quantity": "1e30"}, "quantity", "smaller than 1e20"),
        ({"execution": {"type": "twap", "duration": 299}}, "execution.duration", "300 and 86400"),
        (
            {"execution": {"type": "twap", "duration": 86_401}},
            "execution.duration",
            "300 and 86400",
        ),
        ({"execution": {"type": "twap", "duration": "1.5"}}, "execution.duration", "whole number"),
        ({"execution": {"type": "twap"}}, "execution.duration", "required"),
        ({"execution": {"type": "limit"}}, "execution.price", "required"),
        ({"execution": {"type": "iceberg"}}, "execution.type", "market, limit, twap, vp"),
        ({"execution": {"price": "1"}}, "execution.type", "market, limit, twap, vp"),
        ({"execution": {"type": "limit", "price": "1", "tif": "GTC"}}, "execution.tif", "unknown"),
        (
            {"symbol": "BTCUSDT.P", "execution": {"type": "vp", "urgency": "max"}},
            "execution.urgency",
            "LOW, MEDIUM, HIGH",
        ),
        ({"qty": "1"}, "qty", "unknown field; free-form data goes in meta"),
        ({"Action": "entry"}, "Action", "unknown field"),
        ({"meta": []}, "meta", "must be an object"),
        ({"ttl": 0}, "ttl", "between 1 and"),
        ({"expires_at": "2026-11-21T11:59:59Z"}, "expires_at", "in the future"),
        ({"ttl": 60, "expires_at": "2026-11-22T00:00:00Z"}, "expires_at", "ttl or expires_at"),
        ({"pace": {"grace": "0.2"}}, "pace", "twap and vp"),
        (
            {"execution": {"type": "twap", "duration": 600}, "pace": {"grace": "2"}},
            "pace.grace",
            "between 0 and 1",
        ),
        ({"target_id": "x"}, "target_id", "only a cancel"),
        ({"symbol": None}, "symbol", "required"),
        ({"id": "digest:abc"}, "id", "must not start with digest:"),
        ({"id": ""}, "id", "1 to 128"),
        ({"strategy": "s" * 65}, "strategy", "at most 64"),
    ],
)
def test_invalid_fields_are_named_with_a_reason(
    overrides: dict[str, Any], field: str, fragment: str
) -> None:
    assert fragment in problems(base(**overrides))[field]


# -- sizing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"balance_percent": "10"}, "balance_percent", "exactly one of"),
        ({"quantity": None, "balance_percent": "10", "risk_percent": "1", "stop_loss": "60000"},
         "risk_percent", "(balance_percent is given too)"),
        ({"quantity": None, "quote_quantity": "100", "balance_percent": "5"},
         "balance_percent", "exactly one of"),
        ({"quantity": None, "risk_percent": "1"}, "risk_percent", "needs stop_loss"),
        ({"quantity": None, "balance_percent": "0"}, "balance_percent", "above 0 and at most 100"),
        ({"quantity": None, "balance_percent": "-5"}, "balance_percent", "above 0 and at most 100"),
        ({"quantity": None, "balance_percent": "100.01"}, "balance_percent", "at most 100"),
        ({"quantity": None, "risk_percent": "101", "stop_loss": "60000"}, "risk_percent",
         "at most 100"),
        ({"quantity": None, "balance_percent": "ten"}, "balance_percent", "must be a number"),
        ({"action": "exit", "quantity": None, "side": None, "balance_percent": "50"},
         "balance_percent", "only an entry or a reverse"),
        ({"action": "tp", "quantity": None, "side": None, "risk_percent": "1"},
         "risk_percent", "only an entry or a reverse"),
        ({"action": "cancel", "target_id": "x", "symbol": None, "side": None, "quantity": None,
          "balance_percent": "5"}, "balance_percent", "not allowed on a cancel"),
        ({"quantity": None, "risk_percent": "1", "stop_loss": "66000",
          "execution": {"type": "limit", "price": "65000"}}, "stop_loss.stop_price",
         "must be below execution.price"),
    ],
)  # fmt: skip
def test_each_impossible_size_is_named_with_a_reason(
    overrides: dict[str, Any], field: str, fragment: str
) -> None:
    assert fragment in problems(base(**overrides))[field]


@pytest.mark.parametrize(
    ("overrides", "stored"),
    [
        ({"balance_percent": "25"}, {"balance_percent": "25"}),
        ({"balance_percent": 100}, {"balance_percent": "100"}),
        ({"risk_percent": "0.5", "stop_loss": "60000"}, {"risk_percent": "0.5"}),
    ],
)
def test_balance_and_risk_sizes_are_stored_as_given_for_the_worker(
    overrides: dict[str, Any], stored: dict[str, str]
) -> None:
    payload = parse(base(quantity=None, **overrides)).payload()
    assert {k: payload[k] for k in stored} == stored
    assert "quantity" not in payload and "quote_quantity" not in payload


# -- reverse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "bad"),
    [
        ({"symbol": "BTCUSDT.P", "side": "sell", "quantity": "0.1"}, None),
        ({"symbol": "BTCUSDT.P", "side": "buy", "balance_percent": "20", "leverage": 5,
          "take_profit": "70000", "stop_loss": "60000"}, None),
        ({"symbol": "BTCUSDT", "side": "buy", "risk_percent": "1", "stop_loss": "60000"}, None),
        ({"symbol": "BTCUSDT", "side": "sell", "quantity": "0.1"},
         {"side": "spot cannot hold a short"}),
        ({"symbol": "BTCUSDT.P", "quantity": "0.1"}, {"side": "required for reverse"}),
        ({"symbol": "BTCUSDT.P", "side": "sell"}, {"quantity": "reverse needs exactly one of"}),
        ({"symbol": "BTCUSDT.P", "side": "sell", "quantity": "1", "balance_percent": "5"},
         {"balance_percent": "exactly one of"}),
        ({"symbol": "BTCUSDT.P", "side": "sell", "risk_percent": "1"},
         {"risk_percent": "needs stop_loss"}),
        ({"symbol": "BTCUSDT.P", "side": "sell", "quantity": "1", "stop_loss": "60000",
          "execution": {"type": "limit", "price": "65000"}},
         {"stop_loss.stop_price": "must be above execution.price"}),
        ({"symbol": "BTCUSDT", "side": "buy", "quantity": "1", "leverage": 3},
         {"leverage": "usdm futures only"}),
    ],
)  # fmt: skip
def test_reverse_needs_a_side_and_a_size_and_never_shorts_spot(
    raw: dict[str, Any], bad: dict[str, str | None] | None
) -> None:
    body = {"action": "reverse", **raw}
    if bad is None:
        assert parse(body).action == "reverse"
        return
    found = problems(body)
    for field, fragment in bad.items():
        assert field in found
        assert fragment is None or fragment in found[field], found[field]


def test_every_field_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "action": "entry",
            "symbol": "KRAKEN:XBTUSD",
            "side": "long",
            "quantity": "-1",
            "execution": {"type": "twap", "duration": 5},
            "colour": "red",
        }
    )
    assert set(found) == {"symbol", "side", "quantity", "execution.duration", "colour"}


# -- price levels ---------------------------------------------------------------------------


LIMIT = {"type": "limit", "price": "100"}


@pytest.mark.parametrize(
    ("side", "take_profit", "stop_loss", "bad"),
    [
        ("buy", "110", "90", set()),
        ("sell", "90", "110", set()),
        ("buy", "90", None, {"take_profit.price"}),
        ("buy", None, "110", {"stop_loss.stop_price"}),
        ("buy", "100", None, {"take_profit.price"}),
        ("sell", "110", None, {"take_profit.price"}),
        ("sell", None, "90", {"stop_loss.stop_price"}),
        ("buy", "90", "110", {"take_profit.price", "stop_loss.stop_price"}),
    ],
)
def test_take_profit_above_and_stop_below_for_a_long_mirrored_for_a_short(
    side: str, take_profit: str | None, stop_loss: str | None, bad: set[str]
) -> None:
    raw = base(side=side, execution=LIMIT, take_profit=take_profit, stop_loss=stop_loss)
    if bad:
        assert bad <= set(problems(raw))
    else:
        sig = parse(raw)
        assert sig.take_profit is not None and sig.stop_loss is not None


def test_levels_are_checked_against_each_other_without_a_reference_price() -> None:
    found = problems(base(take_profit={"price": "90"}, stop_loss={"stop_price": "95"}))
    assert "stop_loss.stop_price (95)" in found["take_profit.price"]


def test_levels_are_checked_against_a_twap_limit_price() -> None:
    raw = base(
        execution={"type": "twap", "duration": 600, "limit_price": "64000"},
        take_profit="63000",
    )
    assert "execution.limit_price (64000)" in problems(raw)["take_profit.price"]


@pytest.mark.parametrize(
    ("side", "limit", "ok"),
    [("buy", "89", True), ("buy", "91", False), ("sell", "111", True), ("sell", "109", False)],
)
def test_stop_limit_sits_on_the_closing_side_of_its_trigger(
    side: str, limit: str, ok: bool
) -> None:
    stop = "90" if side == "buy" else "110"
    raw = base(side=side, stop_loss={"stop_price": stop, "limit_price": limit})
    if ok:
        assert parse(raw).stop_loss is not None
    else:
        assert "stop_loss.limit_price" in problems(raw)


# -- actions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected_fields"),
    [
        ({"action": "exit", "symbol": "ETHUSDT"}, None),
        ({"action": "tp", "symbol": "ETHUSDT", "quantity": "0.1"}, None),
        ({"action": "sl", "symbol": "ETHUSDT.P", "side": "sell"}, None),
        ({"action": "cancel", "target_id": "tv-42"}, None),
        ({"action": "cancel", "symbol": "ETHUSDT", "strategy": "s1"}, None),
        ({"action": "cancel", "symbol": "ETHUSDT"}, {"target_id"}),
        (
            {"action": "cancel", "target_id": "x", "quantity": "1", "side": "buy"},
            {"quantity", "side"},
        ),
        ({"action": "exit"}, {"symbol"}),
        ({"action": "tp", "symbol": "ETHUSDT", "take_profit": "5"}, {"take_profit"}),
        (
            {"action": "exit", "symbol": "ETHUSDT", "quantity": "1", "quote_quantity": "2"},
            {"quote_quantity"},
        ),
    ],
)
def test_each_action_requires_and_refuses_its_own_fields(
    raw: dict[str, Any], expected_fields: set[str] | None
) -> None:
    if expected_fields is None:
        assert parse(raw).action == raw["action"]
    else:
        assert set(problems(raw)) == expected_fields


def test_ttl_becomes_an_expiry_and_shorthands_expand() -> None:
    sig = parse(base(ttl="3600", take_profit="70000", stop_loss=60000))
    assert sig.expires_at == NOW + timedelta(hours=1)
    assert sig.take_profit is not None and sig.take_profit.price == Decimal("70000")
    assert sig.stop_loss is not None and sig.stop_loss.stop_price == Decimal("60000")


def test_expires_at_accepts_iso_and_epoch_seconds_in_utc() -> None:
    later = NOW + timedelta(minutes=5)
    assert parse(base(expires_at="2026-11-21T12:05:00Z")).expires_at == later
    assert parse(base(expires_at="2026-11-21T12:05:00")).expires_at == later
    assert parse(base(expires_at=int(later.timestamp()))).expires_at == later


def test_the_stored_payload_loads_back_to_the_same_signal() -> None:
    sig = parse(
        base(
            execution={"type": "twap", "duration": 600, "limit_price": "64000.50"},
            take_profit={"price": "70000"},
            stop_loss={"stop_price": "60000", "limit_price": "59900"},
            ttl=60,
            pace={"grace": "0.2", "min_ratio": 0.5, "stall_seconds": 120},
            meta={"bar": {"close": Decimal("64000.5")}, "n": 3},
        )
    )
    payload = json.loads(json.dumps(sig.payload()))
    assert Signal.from_payload(payload).payload() == sig.payload()
    assert payload["quantity"] == "1" and payload["meta"]["bar"]["close"] == "64000.5"


# -- numbers --------------------------------------------------------------------------------

finite_decimals = st.builds(
    lambda unscaled, places: Decimal(unscaled).scaleb(-places),
    st.integers(min_value=-(10**20) + 1, max_value=10**20 - 1),
    st.integers(min_value=0, max_value=18),
).filter(lambda d: abs(d) < Decimal("1e20"))


@given(finite_decimals)
def test_numbers_parse_exactly_from_strings_and_json_numbers(number: Decimal) -> None:
    assert parse_decimal(str(number)) == number
    assert parse_decimal(format(number, "f")) == number
    assert parse_decimal(f"  {format(number, 'f')} ") == number
    from_json = json.loads(f'{{"q": {format(number, "f")}}}', parse_float=Decimal)["q"]
    parsed = parse_decimal(from_json)
    assert parsed == number and isinstance(parsed, Decimal)


@given(finite_decimals.filter(lambda d: d > 0))
def test_quantities_as_string_or_number_store_the_same_exact_text(number: Decimal) -> None:
    text = format(number, "f")
    as_string = parse(base(quantity=text)).payload()["quantity"]
    as_number = parse(base(quantity=json.loads(text, parse_float=Decimal))).payload()["quantity"]
    assert Decimal(as_string) == Decimal(as_number) == number


@given(
    st.one_of(st.text(max_size=40), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
)
def test_number_parsing_never_fails_with_anything_but_a_field_error(value: object) -> None:
    try:
        number = parse_decimal(value)
    except PydanticCustomError:
        return
    assert number.is_finite() and abs(number) < Decimal("1e20")


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-inf", "1e999999999", "1e-999999999", "0x10", "1_000", "", "1,5"]
)
def test_non_finite_huge_or_odd_numbers_are_refused(value: str) -> None:
    with pytest.raises(PydanticCustomError):
        parse_decimal(value)


def test_a_float_from_python_is_read_by_its_shortest_repr_not_its_binary_value() -> None:
    assert parse_decimal(0.1) == Decimal("0.1")


# -- what an algo leaves ---------------------------------------------------------------------


def test_remainder_policy_is_kept_with_its_slippage_band() -> None:
    twap = {"type": "TWAP", "duration": 600, "remainder": "LIMIT", "max_slippage_bps": "25"}
    signal = parse(base(action="exit", side=None, quantity=None, execution=twap, ttl=900))
    assert signal.payload()["execution"] == {
        "type": "twap", "duration": 600, "remainder": "limit", "max_slippage_bps": "25",
    }  # fmt: skip
    assert Signal.from_payload(signal.payload()) == signal
    vp = {"type": "vp", "urgency": "low", "remainder": "market"}
    assert parse(base(symbol="BTCUSDT.P", execution=vp)).payload()["execution"]["remainder"] == (
        "market"
    )


@pytest.mark.parametrize(
    ("execution", "extra", "field", "fragment"),
    [
        ({"remainder": "later"}, {}, "execution.remainder", "must be one of: cancel, market"),
        ({"remainder": "limit"}, {"ttl": 60}, "execution.max_slippage_bps", "required with"),
        ({"remainder": "limit", "max_slippage_bps": 10}, {}, "execution.remainder", "needs ttl"),
        ({"max_slippage_bps": 10}, {}, "execution.max_slippage_bps", "only with remainder limit"),
        ({"remainder": "limit", "max_slippage_bps": 0}, {"ttl": 60},
         "execution.max_slippage_bps", "must be above 0"),
        ({"remainder": "limit", "max_slippage_bps": 5001}, {"ttl": 60},
         "execution.max_slippage_bps", "at most 5000"),
    ],
)  # fmt: skip
def test_a_remainder_that_cannot_be_carried_out_is_refused_naming_it(
    execution: dict[str, Any], extra: dict[str, Any], field: str, fragment: str
) -> None:
    twap = {"type": "twap", "duration": 600, **execution}
    found = problems(base(execution=twap, **extra))
    assert fragment in found[field], found


def test_only_algos_leave_a_remainder() -> None:
    found = problems(base(execution={"type": "limit", "price": "1", "remainder": "market"}))
    assert found == {"execution.remainder": "unknown field"}


# -- leverage and margin type (usdm) ---------------------------------------------------------


def test_leverage_and_margin_type_on_a_usdm_entry() -> None:
    signal = parse(base(market="usdm", leverage="7", margin_type="ISOLATED"))
    assert signal.leverage == 7 and signal.margin_type is MarginType.ISOLATED
    assert signal.payload()["leverage"] == 7 and signal.payload()["margin_type"] == "isolated"
    assert Signal.from_payload(signal.payload()) == signal
    cross = parse(base(symbol="BTCUSDT.P", leverage=125, margin_type="cross"))
    assert cross.leverage == 125 and cross.margin_type is MarginType.CROSS
    assert parse(base(market="usdm")).leverage is None


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"market": "usdm", "leverage": 0}, "leverage", "from 1 to 125"),
        ({"market": "usdm", "leverage": "126"}, "leverage", "from 1 to 125"),
        ({"market": "usdm", "leverage": "2.5"}, "leverage", "whole number"),
        ({"market": "usdm", "leverage": True}, "leverage", "true/false"),
        ({"market": "usdm", "margin_type": "crossed"}, "margin_type", "isolated, cross"),
        ({"leverage": 5}, "leverage", "usdm futures only"),
        ({"market": "spot", "margin_type": "isolated"}, "margin_type", "usdm futures only"),
        (
            {"action": "exit", "market": "usdm", "side": None, "leverage": 5},
            "leverage",
            "only an entry",
        ),
    ],
)
def test_bad_leverage_or_margin_type_is_named(
    overrides: dict[str, Any], field: str, fragment: str
) -> None:
    found = problems(base(**overrides))
    assert fragment in found[field], found


def test_a_cancel_refuses_leverage() -> None:
    raw = {"action": "cancel", "target_id": "x", "margin_type": "cross"}
    assert "not allowed on a cancel" in problems(raw)["margin_type"]
