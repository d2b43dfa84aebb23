"""USD-M account views: positionRisk (v2 and v3), balance and account."""

from __future__ import annotations

from decimal import Decimal

from paper.futures import FuturesBook, Position
from paper.leverage import max_notional
from paper.numbers import ZERO, fmt, fmt8, plain
from paper.params import Params


def position_rows(book: FuturesBook, p: Params, version: int) -> list[dict[str, object]]:
    symbol = p.get("symbol")
    names = [book.engine.usdm_spec(symbol).symbol] if symbol else list(book.positions)
    sides = ("LONG", "SHORT") if book.dual else ("BOTH",)
    chosen = [book.position(name, side) for name in names for side in sides]
    if version >= 3:
        chosen = [pos for pos in chosen if pos.amt != 0 or book.open[pos.symbol]]
    return [render_position(book, pos, version) for pos in chosen]


def render_position(book: FuturesBook, pos: Position, version: int) -> dict[str, object]:
    lot = book.lot(pos.symbol)
    mark = book.engine.price(pos.symbol)
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
        margin, maint = margins(book, pos)
        common.update(
            {
                "marginAsset": "USDT",
                "initialMargin": fmt8(margin),
                "maintMargin": fmt8(maint),
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


MAINT_MARGIN_RATE = Decimal("0.004")


def margins(book: FuturesBook, pos: Position) -> tuple[Decimal, Decimal]:
    """(initial, maintenance) margin of a position at the mark price, as positionRisk v3."""
    notional = abs(pos.amt * book.engine.price(pos.symbol))
    return notional / Decimal(book.leverage[pos.symbol]), notional * MAINT_MARGIN_RATE


def account(book: FuturesBook, version: int = 3) -> dict[str, object]:
    """``GET /fapi/v2/account`` (every symbol's position, leverage, fee tier) or ``v3``
    (positions held only). Margins are the positions' at the mark price, the same figures
    ``positionRisk`` v3 shows; open orders reserve no margin on the paper exchange."""
    rows = balances(book)
    usdt = next((r for r in rows if r["asset"] == "USDT"), None)
    wallet = Decimal(str(usdt["balance"])) if usdt else ZERO
    pnl = Decimal(str(usdt["crossUnPnl"])) if usdt else ZERO
    available = str(usdt["availableBalance"]) if usdt else "0.00000000"
    per_position = {(pos.symbol, pos.side): margins(book, pos) for pos in book.all_positions()}
    initial = sum((m[0] for m in per_position.values()), ZERO)
    maint = sum((m[1] for m in per_position.values()), ZERO)
    totals: dict[str, object] = {
        "totalInitialMargin": fmt8(initial),
        "totalMaintMargin": fmt8(maint),
        "totalWalletBalance": fmt8(wallet),
        "totalUnrealizedProfit": fmt8(pnl),
        "totalMarginBalance": fmt8(wallet + pnl),
        "totalPositionInitialMargin": fmt8(initial),
        "totalOpenOrderInitialMargin": "0.00000000",
        "totalCrossWalletBalance": fmt8(wallet),
        "totalCrossUnPnl": fmt8(pnl),
        "availableBalance": available,
        "maxWithdrawAmount": available,
    }
    assets = []
    for r in rows:
        usdt_row = r["asset"] == "USDT"
        asset: dict[str, object] = {
            "asset": r["asset"],
            "walletBalance": r["balance"],
            "unrealizedProfit": r["crossUnPnl"],
            "marginBalance": fmt8(Decimal(str(r["balance"])) + Decimal(str(r["crossUnPnl"]))),
            "maintMargin": fmt8(maint if usdt_row else ZERO),
            "initialMargin": fmt8(initial if usdt_row else ZERO),
            "positionInitialMargin": fmt8(initial if usdt_row else ZERO),
            "openOrderInitialMargin": "0.00000000",
            "crossWalletBalance": r["crossWalletBalance"],
            "crossUnPnl": r["crossUnPnl"],
            "availableBalance": r["availableBalance"],
            "maxWithdrawAmount": r["maxWithdrawAmount"],
        }
        if version == 2:
            asset["marginAvailable"] = True
        asset["updateTime"] = r["updateTime"]
        assets.append(asset)
    if version == 2:
        positions = [
            {
                "symbol": pos.symbol,
                "initialMargin": fmt8(per_position[(pos.symbol, pos.side)][0]),
                "maintMargin": fmt8(per_position[(pos.symbol, pos.side)][1]),
                "unrealizedProfit": fmt8(book.unrealized(pos)),
                "positionInitialMargin": fmt8(per_position[(pos.symbol, pos.side)][0]),
                "openOrderInitialMargin": "0",
                "leverage": str(book.leverage[pos.symbol]),
                "isolated": book.margin_type[pos.symbol] == "isolated",
                "entryPrice": fmt(pos.entry, book.lot(pos.symbol).price_places + 1),
                "breakEvenPrice": fmt(pos.entry, book.lot(pos.symbol).price_places + 1),
                "maxNotional": "20000000",
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, book.lot(pos.symbol).qty_places),
                "updateTime": pos.update_time,
            }
            for pos in (book.all_positions() if book.dual else book.positions.values())
        ]
        return {
            "feeTier": 0,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            **totals,
            "assets": assets,
            "positions": positions,
        }
    return {
        **totals,
        "assets": assets,
        "positions": [
            {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, book.lot(pos.symbol).qty_places),
                "unrealizedProfit": fmt8(book.unrealized(pos)),
                "isolatedMargin": "0",
                "notional": fmt8(pos.amt * book.engine.price(pos.symbol)),
                "isolatedWallet": "0",
                "initialMargin": fmt8(per_position[(pos.symbol, pos.side)][0]),
                "maintMargin": fmt8(per_position[(pos.symbol, pos.side)][1]),
                "updateTime": pos.update_time,
            }
            for pos in book.all_positions()
            if pos.amt != 0
        ],
    }
