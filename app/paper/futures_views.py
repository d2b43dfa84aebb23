"""USD-M account views: positionRisk (v2 and v3), balance and account."""

from __future__ import annotations

from decimal import Decimal

from app.paper.futures import FuturesBook, Position
from app.paper.leverage import max_notional
from app.paper.numbers import ZERO, fmt, fmt8, plain
from app.paper.params import Params


def position_rows(book: FuturesBook, p: Params, version: int) -> list[dict[str, object]]:
    symbol = p.get("symbol")
    names = [book.engine.spec(symbol).symbol] if symbol else list(book.positions)
    sides = ("LONG", "SHORT") if book.dual else ("BOTH",)
    chosen = [book.position(name, side) for name in names for side in sides]
    if version >= 3:
        chosen = [pos for pos in chosen if pos.amt != 0 or book.open[pos.symbol]]
    return [render_position(book, pos, version) for pos in chosen]


def render_position(book: FuturesBook, pos: Position, version: int) -> dict[str, object]:
    lot = book.lot(pos.symbol)
    mark = book.engine.price(pos.symbol)
    leverage = Decimal(book.leverage[pos.symbol])
    notional = pos.amt * mark
    common: dict[str, object] = {
        "symbol": pos.symbol,
        "positionSide": pos.side,
        "positionAmt": fmt(pos.amt, lot.qty_places),
        "entryPrice": fmt(pos.entry, lot.price_places + 1),
        "breakEvenPrice": fmt(pos.entry, lot.price_places + 1),
        "markPrice": fmt8(mark),
        "unRealizedProfit": fmt8(book.unrealized(pos)),
        "liquidationPrice": "0",
        "isolatedMargin": "0.00000000",
        "notional": fmt8(notional),
        "isolatedWallet": "0",
        "updateTime": pos.update_time,
    }
    if version >= 3:
        margin = abs(notional) / leverage
        common.update(
            {
                "marginAsset": "USDT",
                "initialMargin": fmt8(margin),
                "maintMargin": fmt8(abs(notional) * Decimal("0.004")),
                "positionInitialMargin": fmt8(margin),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
            }
        )
    else:
        common.update(
            {
                "leverage": str(book.leverage[pos.symbol]),
                "maxNotionalValue": plain(max_notional(pos.symbol, book.leverage[pos.symbol])),
                "marginType": book.margin_type[pos.symbol],
                "isAutoAddMargin": "false",
            }
        )
    return common


def balances(book: FuturesBook) -> list[dict[str, object]]:
    wallet = book.engine.futures_wallet
    pnl = sum((book.unrealized(pos) for pos in book.all_positions()), ZERO)
    used = sum(
        (
            abs(pos.amt) * book.engine.price(pos.symbol) / Decimal(book.leverage[pos.symbol])
            for pos in book.all_positions()
        ),
        ZERO,
    )
    rows = []
    for asset, balance in sorted(wallet.balances.items()):
        available = balance.free + pnl - used if asset == "USDT" else balance.free
        rows.append(
            {
                "accountAlias": "SgsR",
                "asset": asset,
                "balance": fmt8(balance.free),
                "crossWalletBalance": fmt8(balance.free),
                "crossUnPnl": fmt8(pnl if asset == "USDT" else ZERO),
                "availableBalance": fmt8(available),
                "maxWithdrawAmount": fmt8(max(available, ZERO)),
                "marginAvailable": True,
                "updateTime": book.engine.now,
            }
        )
    return rows


def account(book: FuturesBook) -> dict[str, object]:
    rows = balances(book)
    usdt = next((r for r in rows if r["asset"] == "USDT"), None)
    wallet = str(usdt["balance"]) if usdt else "0.00000000"
    pnl = str(usdt["crossUnPnl"]) if usdt else "0.00000000"
    available = str(usdt["availableBalance"]) if usdt else "0.00000000"
    return {
        "totalInitialMargin": "0.00000000",
        "totalMaintMargin": "0.00000000",
        "totalWalletBalance": wallet,
        "totalUnrealizedProfit": pnl,
        "totalMarginBalance": fmt8(Decimal(wallet) + Decimal(pnl)),
        "totalPositionInitialMargin": "0.00000000",
        "totalOpenOrderInitialMargin": "0.00000000",
        "totalCrossWalletBalance": wallet,
        "totalCrossUnPnl": pnl,
        "availableBalance": available,
        "maxWithdrawAmount": available,
        "assets": [
            {
                "asset": r["asset"],
                "walletBalance": r["balance"],
                "unrealizedProfit": r["crossUnPnl"],
                "marginBalance": r["balance"],
                "availableBalance": r["availableBalance"],
                "crossWalletBalance": r["crossWalletBalance"],
                "crossUnPnl": r["crossUnPnl"],
                "maxWithdrawAmount": r["maxWithdrawAmount"],
                "updateTime": r["updateTime"],
            }
            for r in rows
        ],
        "positions": [
            {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, book.lot(pos.symbol).qty_places),
                "unrealizedProfit": fmt8(book.unrealized(pos)),
                "isolatedMargin": "0",
                "notional": fmt8(pos.amt * book.engine.price(pos.symbol)),
                "isolatedWallet": "0",
                "initialMargin": "0",
                "maintMargin": "0",
                "updateTime": pos.update_time,
            }
            for pos in book.all_positions()
            if pos.amt != 0
        ],
    }
