"""Entries sized from the account on the paper exchange over HTTP: the worker reads the
balance (spot /api/v3/account, USD-M /fapi/v3/account and /fapi/v1/commissionRate) when it
runs, and the paper ledger shows the quantity that derivation gives; GET /api/signals/{id}
shows how it was derived."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient

from app.execution.context import ExecContext
from app.main import create_app
from tests.conftest import TEST_ADMIN_TOKEN
from tests.execution.conftest import (
    MakeContext,
    ledger,
    orders,
    positions,
    run,
    set_price,
    signal_row,
    submit,
)

D = Decimal
pytestmark = pytest.mark.slow


def set_balances(control: httpx.Client, account: str, **balances: str) -> None:
    control.post("/balances", json={"account": account, "balances": balances}).raise_for_status()


def test_spot_balance_percent_buys_that_share_of_the_free_usdt_rounded_down(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="10000", BTC="0")
    sid = submit(ctx, balance_percent="10", quantity=None, take_profit="70000", stop_loss="60000")

    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    # 10 % of 10,000 USDT at 65,000 = 0.0153846 BTC, down to the 0.00001 step.
    (placed,) = ledger(control, kind="spot_order")
    assert (placed["side"], placed["order_type"]) == ("BUY", "MARKET")
    assert placed["quantity"] == "0.01538"
    entry = orders(ctx, sid)[0]
    assert entry.extra is not None
    assert entry.extra["sizing"] == {
        "method": "balance_percent", "percent": "10", "price": "65000", "free": "10000",
        "free_asset": "USDT", "equity": "10000", "fee_rate": "0.001",
        "wanted": entry.extra["sizing"]["wanted"], "quantity": "0.01538", "capped_by": [],
    }  # fmt: skip
    assert D(entry.extra["sizing"]["wanted"]) > D("0.01538")
    # Protected as usual: the bracket covers what was received (net of the 0.1 % fee).
    assert positions(ctx)[0].quantity == D("0.01536462")
    (oco,) = ledger(control, kind="oco")
    assert oco["quantity"] == "0.01536"


def test_spot_risk_percent_sizes_from_equity_and_the_stop_distance_with_fees(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="9350", BTC="0.01")  # equity 9,350 + 650 = 10,000
    sid = submit(ctx, risk_percent="1", quantity=None, stop_loss="60000")

    assert run(ctx, sid).status == "done"

    # 100 USDT / (5,000 + 0.1 % x (65,000 + 60,000)) = 0.0195121 -> 0.01951.
    entry, stop = ledger(control, kind="spot_order")
    assert (entry["order_type"], entry["quantity"]) == ("MARKET", "0.01951")
    sizing = orders(ctx, sid)[0].extra["sizing"]  # type: ignore[index]
    assert (sizing["method"], sizing["equity"], sizing["stop_price"]) == (
        "risk_percent", "10000", "60000",
    )  # fmt: skip
    # 0.01951 less the 0.1 % fee in BTC, down to the step: the stop covers all of it.
    assert (stop["order_type"], stop["quantity"]) == ("STOP_LOSS", "0.01949")


def test_usdm_balance_percent_uses_available_margin_times_leverage_less_the_fee(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "usdm", USDT="1000")
    sid = submit(ctx, symbol="BTCUSDT.P", side="sell", balance_percent="50", quantity=None,
                 leverage=10, stop_loss="70000")  # fmt: skip

    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    # 500 x 10 / (1 + 10 x 0.0004) = 4,980.08 USDT: 0.0766 BTC, down to the 0.001 step.
    (placed,) = ledger(control, kind="futures_order")
    assert (placed["side"], placed["quantity"]) == ("SELL", "0.076")
    sizing = orders(ctx, sid)[0].extra["sizing"]  # type: ignore[index]
    assert (sizing["leverage"], sizing["free"], sizing["fee_rate"]) == (10, "1000", "0.0004")
    (stop,) = ledger(control, kind="futures_conditional")
    assert (stop["order_type"], stop["quantity"]) == ("STOP_MARKET", "0.076")


def test_usdm_risk_percent_sizes_from_margin_balance_and_the_stop(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "usdm", USDT="10000")
    sid = submit(ctx, symbol="BTCUSDT.P", risk_percent="2", quantity=None, stop_loss="63000")

    assert run(ctx, sid).status == "done"

    # 200 USDT / (2,000 + 0.04 % x 128,000) = 0.0975 -> 0.097.
    (placed,) = ledger(control, kind="futures_order")
    assert placed["quantity"] == "0.097"


def test_a_size_below_the_minimum_is_refused_with_the_reason_and_nothing_is_sent(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="3")
    sid = submit(ctx, balance_percent="100", quantity=None)

    outcome = run(ctx, sid)

    assert outcome.status == "refused"
    reason = signal_row(ctx, sid).status_reason or ""
    assert "balance_percent 100% of free 3 USDT" in reason
    assert "must be at least 5 USDT [NOTIONAL]" in reason and "never rounded up" in reason
    assert ledger(control) == []


def test_a_sized_twap_below_binances_minimum_is_refused_with_the_sizing_named(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="5000")
    sid = submit(ctx, balance_percent="10", quantity=None,
                 execution={"type": "twap", "duration": 600})  # fmt: skip

    assert run(ctx, sid).status == "refused"

    reason = signal_row(ctx, sid).status_reason or ""
    assert reason.startswith("balance_percent 10% of free 5000 USDT at 65000: 0.00769")
    assert "must be at least 1000 USDT" in reason
    assert ledger(control) == []


def test_max_notional_per_signal_caps_a_balance_sized_entry(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(max_notional_per_signal=D("500"))
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="10000")
    sid = submit(ctx, balance_percent="100", quantity=None)

    assert run(ctx, sid).status == "done"

    (placed,) = ledger(control, kind="spot_order")
    assert placed["quantity"] == "0.00769"  # 500 / 65,000 rounded down
    assert orders(ctx, sid)[0].extra["sizing"]["capped_by"] == ["max notional"]  # type: ignore[index]


def test_the_api_shows_how_an_entry_was_sized(ctx: ExecContext, control: httpx.Client) -> None:
    set_price(control, "BTCUSDT", "65000")
    set_balances(control, "spot", USDT="10000")
    sid = submit(ctx, balance_percent="10", quantity=None)
    assert run(ctx, sid).status == "done"

    with TestClient(create_app(ctx.settings)) as api:
        response = api.get(
            f"/api/signals/{sid}", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
        )

    assert response.status_code == 200
    body = response.json()
    assert body["sizing"]["method"] == "balance_percent"
    assert body["sizing"]["quantity"] == "0.01538" and body["sizing"]["free"] == "10000"
    assert body["payload"]["balance_percent"] == "10"
