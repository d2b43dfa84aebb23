"""Leverage and margin type from the signal: set on the symbol before a usdm entry, only when
they differ, and the signal refused (nothing placed) when the leverage brackets forbid it."""

from __future__ import annotations

import httpx

from app.execution.context import ExecContext
from tests.execution.conftest import (
    Paper,
    ledger,
    orders,
    positions,
    run,
    set_price,
    submit,
)

SETTINGS_PATHS = ("/fapi/v1/leverage", "/fapi/v1/marginType")


def setting_calls(paper: Paper) -> list[str]:
    return [p for _, method, p in paper.log.entries if method == "POST" and p in SETTINGS_PATHS]


def test_leverage_and_isolated_margin_on_the_position_and_the_exchange(
    ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(
        ctx, symbol="BTCUSDT.P", quantity="0.1", leverage=7, margin_type="isolated",
        take_profit="70000", stop_loss="60000",
    )  # fmt: skip

    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    (position,) = positions(ctx)
    assert (position.leverage, position.margin_type) == (7, "isolated")
    (risk,) = ctx.client.position_risk("BTCUSDT")
    assert risk.leverage == 7 and risk.marginType == "isolated"
    assert risk.positionAmt == position.quantity
    assert sorted(setting_calls(paper)) == sorted(SETTINGS_PATHS)

    # The same settings again: nothing to change, so neither is sent.
    paper.log.entries.clear()
    again = submit(
        ctx, symbol="BTCUSDT.P", quantity="0.1", leverage=7, margin_type="isolated",
        strategy="other",
    )  # fmt: skip
    outcome = run(ctx, again)
    assert outcome.status == "done", outcome.reason
    assert setting_calls(paper) == []
    assert [(p.leverage, p.margin_type) for p in positions(ctx)] == [(7, "isolated")] * 2


def test_the_margin_type_of_a_symbol_with_a_position_cannot_change(
    ctx: ExecContext, control: httpx.Client
) -> None:
    first = submit(ctx, symbol="BTCUSDT.P", quantity="0.1", margin_type="isolated")
    assert run(ctx, first).status == "done"
    placed = len(ledger(control))

    crossed = submit(ctx, symbol="BTCUSDT.P", quantity="0.1", margin_type="cross", strategy="other")
    outcome = run(ctx, crossed)

    assert outcome.status == "refused"
    assert "code -4048" in (outcome.reason or ""), outcome.reason
    assert orders(ctx, crossed) == [] and len(ledger(control)) == placed
    (risk,) = ctx.client.position_risk("BTCUSDT")
    assert risk.marginType == "isolated"


def test_a_position_above_the_leverage_bracket_cap_is_refused_before_anything_is_sent(
    ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    set_price(control, "BTCUSDT", "65000")
    # 1 BTC at 65,000: above the 50,000 cap of the 125x bracket
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="1", leverage=125)

    outcome = run(ctx, sid)

    assert outcome.status == "refused"
    assert "65000 USDT position on BTCUSDT is above the 50000 USDT" in (outcome.reason or "")
    assert orders(ctx, sid) == [] and ledger(control) == [] and setting_calls(paper) == []
    (risk,) = ctx.client.position_risk("BTCUSDT")
    assert risk.leverage == 20  # untouched
    assert [p for p in positions(ctx) if p.status == "open"] == []

    # 0.5 BTC fits under the cap
    fits = submit(ctx, symbol="BTCUSDT.P", quantity="0.5", leverage=125, strategy="other")
    assert run(ctx, fits).status == "done"
    (risk,) = ctx.client.position_risk("BTCUSDT")
    assert risk.leverage == 125


def test_a_leverage_above_the_symbols_maximum_is_refused(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = submit(ctx, symbol="SOLUSDT.P", quantity="1", leverage=100)

    outcome = run(ctx, sid)

    assert outcome.status == "refused"
    assert outcome.reason == "leverage 100 is above SOLUSDT's maximum of 75x"
    assert ledger(control) == []
