"""An entry plans with a price that another job of the process read moments ago
(PACEKEEPER_PRICE_MAX_AGE): a burst on one symbol makes one price request, not one each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from app.execution.context import ExecContext
from tests.execution.conftest import MakeContext, run, set_price, submit


def counting_price_reads(ctx: ExecContext) -> list[str]:
    reads: list[str] = []
    real = ctx.client.ticker_price

    def ticker_price(symbol: str) -> Decimal:
        reads.append(symbol)
        return real(symbol)

    ctx.client.ticker_price = ticker_price  # type: ignore[method-assign]
    return reads


def entries(ctx: ExecContext, count: int, **fields: Any) -> list[str]:
    return [
        run(ctx, submit(ctx, quantity="0.01", strategy=f"s{n}", **fields)).status
        for n in range(count)
    ]


def test_entries_on_one_symbol_share_a_recent_price_read(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    ctx = make_ctx(price_max_age=3600)  # every entry of the test is within the age
    reads = counting_price_reads(ctx)

    assert entries(ctx, 3) == ["done"] * 3
    assert reads == ["BTCUSDT"]


def test_with_a_maximum_age_of_zero_each_entry_reads_the_price(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    ctx = make_ctx(price_max_age=0)
    reads = counting_price_reads(ctx)

    assert entries(ctx, 2) == ["done"] * 2
    assert reads == ["BTCUSDT", "BTCUSDT"]
