"""TWAP/VP notional limits are in USDT: a symbol quoted in BTC (ETHBTC) is converted at
BTCUSDT's price before the bounds are checked, in planning as on the paper exchange."""

from __future__ import annotations

import httpx
import pytest

from app.execution.context import ExecContext
from tests.execution.conftest import ledger, orders, run, set_price, submit

pytestmark = pytest.mark.slow


def prices(control: httpx.Client, btc: str = "65000") -> None:
    set_price(control, "ETHBTC", "0.049")
    set_price(control, "BTCUSDT", btc)  # 1 ETH = 0.049 BTC = 3,185 USDT


def test_an_ethbtc_twap_worth_enough_usdt_is_placed(
    ctx: ExecContext, control: httpx.Client
) -> None:
    prices(control)
    # 20 ETH = 0.98 BTC: "0.98 < 1000" when read as USDT, 63,700 USDT in fact.
    sid = submit(ctx, symbol="ETHBTC", quantity="20", execution={"type": "twap", "duration": 600})

    outcome = run(ctx, sid)

    assert outcome.status == "working", outcome.reason
    (twap,) = orders(ctx, sid)
    (placed,) = ledger(control, kind="spot_twap")
    assert (placed["symbol"], placed["quantity"]) == ("ETHBTC", "20")
    assert placed["client_id"] == twap.client_id


def test_an_ethbtc_twap_too_small_in_usdt_is_refused_with_the_usdt_figures(
    ctx: ExecContext, control: httpx.Client
) -> None:
    prices(control)
    sid = submit(ctx, symbol="ETHBTC", quantity="0.3", execution={"type": "twap", "duration": 600})

    outcome = run(ctx, sid)

    assert outcome.status == "refused" and outcome.reason is not None
    # 0.3 ETH x 0.049 = 0.0147 BTC x 65,000 = 955.5 USDT
    assert "955.5 USDT" in outcome.reason and "at least 1000 USDT" in outcome.reason
    assert "0.0147 BTC" in outcome.reason
    assert ledger(control, kind="spot_twap") == []


def test_an_ethbtc_vp_follows_the_btc_price(ctx: ExecContext, control: httpx.Client) -> None:
    prices(control, btc="30000")  # 4 ETH = 0.196 BTC = 5,880 USDT: under the VP minimum
    sid = submit(ctx, symbol="ETHBTC", quantity="4", execution={"type": "vp", "urgency": "low"})

    outcome = run(ctx, sid)

    assert outcome.status == "refused" and outcome.reason is not None
    assert "5880 USDT" in outcome.reason and "at least 10000 USDT" in outcome.reason
    prices(control)  # at 65,000 the same 4 ETH is 12,740 USDT
    again = submit(ctx, symbol="ETHBTC", quantity="4", execution={"type": "vp", "urgency": "low"})
    assert run(ctx, again).status == "working"
    assert [e["quantity"] for e in ledger(control, kind="spot_vp")] == ["4"]
