"""Default symbols with realistic filters, and the exchangeInfo documents built from them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paper.numbers import places, plain

D = Decimal


@dataclass(frozen=True)
class Lot:
    """Quantity and price rules of one market (spot or USD-M) for a symbol."""

    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal

    @property
    def qty_places(self) -> int:
        return places(self.step)

    @property
    def price_places(self) -> int:
        return places(self.tick)


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    price: Decimal  # starting price
    volume: Decimal  # market volume in base units per second (drives VP participation)
    spot: Lot
    usdm: Lot
    futures: bool = True  # listed on USD-M too (a spot-only symbol keeps a placeholder usdm)


def _spec(
    symbol: str,
    base: str,
    price: str,
    volume: str,
    spot: tuple[str, ...],
    usdm: tuple[str, ...] | None,
    quote: str = "USDT",
) -> SymbolSpec:
    def lot(values: tuple[str, ...]) -> Lot:
        return Lot(*(D(v) for v in values))

    return SymbolSpec(
        symbol, base, quote, D(price), D(volume), lot(spot), lot(usdm or spot), usdm is not None
    )


# tick, step, minQty, maxQty, market maxQty, minPrice, maxPrice, minNotional
DEFAULT_SYMBOLS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        _spec(
            "BTCUSDT", "BTC", "65000", "0.3",
            ("0.01", "0.00001", "0.00001", "9000", "120", "0.01", "1000000", "5"),
            ("0.10", "0.001", "0.001", "1000", "120", "556.80", "4529764", "100"),
        ),
        _spec(
            "ETHUSDT", "ETH", "3200", "6",
            ("0.01", "0.0001", "0.0001", "9000", "3000", "0.01", "1000000", "5"),
            ("0.01", "0.001", "0.001", "10000", "2000", "39.86", "306177", "20"),
        ),
        _spec(
            "BNBUSDT", "BNB", "600", "30",
            ("0.01", "0.001", "0.001", "9000", "1000", "0.01", "100000", "5"),
            ("0.010", "0.01", "0.01", "100000", "2000", "6.600", "100000", "5"),
        ),
        _spec(
            "SOLUSDT", "SOL", "150", "130",
            ("0.01", "0.001", "0.001", "90000", "20000", "0.01", "10000", "5"),
            ("0.0100", "1", "1", "1000000", "5000", "0.4200", "6857", "5"),
        ),
        # quoted in BTC and spot only: exercises conversion of notional limits to USDT
        _spec(
            "ETHBTC", "ETH", "0.04900", "6",
            ("0.00001", "0.0001", "0.0001", "100000", "1000", "0.00001", "922327", "0.0001"),
            None, quote="BTC",
        ),
    )
}  # fmt: skip

SPOT_ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
STP_MODES = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]
SPOT_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
FUTURES_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]
PERCENT_BID_UP, PERCENT_BID_DOWN = D(5), D("0.2")
PERCENT_ASK_UP, PERCENT_ASK_DOWN = D(5), D("0.2")
MAX_NUM_ORDERS = 200
# USD-M PERCENT_PRICE: a LIMIT price must stay within these multiples of the mark price.
FUTURES_PERCENT_UP, FUTURES_PERCENT_DOWN = D("1.0500"), D("0.9500")
MAX_NUM_ORDER_LISTS = 20


def spot_symbol_info(spec: SymbolSpec, max_algo_orders: int) -> dict[str, object]:
    lot = spec.spot
    q = 8
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": q,
        "quoteAsset": spec.quote,
        "quotePrecision": q,
        "quoteAssetPrecision": q,
        "baseCommissionPrecision": q,
        "quoteCommissionPrecision": q,
        "orderTypes": SPOT_ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _f8(lot.min_price),
                "maxPrice": _f8(lot.max_price),
                "tickSize": _f8(lot.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _f8(lot.min_qty),
                "maxQty": _f8(lot.max_qty),
                "stepSize": _f8(lot.step),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": _f8(D(0)),
                "maxQty": _f8(lot.market_max_qty),
                "stepSize": _f8(D(0)),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": plain(PERCENT_BID_UP),
                "bidMultiplierDown": plain(PERCENT_BID_DOWN),
                "askMultiplierUp": plain(PERCENT_ASK_UP),
                "askMultiplierDown": plain(PERCENT_ASK_DOWN),
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _f8(lot.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": max_algo_orders},
            {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": MAX_NUM_ORDER_LISTS},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": STP_MODES,
    }


def spot_exchange_info(
    symbols: list[SymbolSpec], server_ms: int, max_algo_orders: int
) -> dict[str, object]:
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": SPOT_RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [spot_symbol_info(spec, max_algo_orders) for spec in symbols],
    }


def futures_symbol_info(spec: SymbolSpec) -> dict[str, object]:
    lot = spec.usdm
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": lot.price_places + 1,
        "quantityPrecision": lot.qty_places,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": plain(lot.min_price),
                "maxPrice": plain(lot.max_price),
                "tickSize": plain(lot.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": plain(lot.min_qty),
                "maxQty": plain(lot.max_qty),
                "stepSize": plain(lot.step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": plain(lot.min_qty),
                "maxQty": plain(lot.market_max_qty),
                "stepSize": plain(lot.step),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": MAX_NUM_ORDERS},
            {"filterType": "MIN_NOTIONAL", "notional": plain(lot.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": f"{FUTURES_PERCENT_UP:f}",
                "multiplierDown": f"{FUTURES_PERCENT_DOWN:f}",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def futures_exchange_info(symbols: list[SymbolSpec], server_ms: int) -> dict[str, object]:
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": FUTURES_RATE_LIMITS,
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [futures_symbol_info(spec) for spec in symbols],
    }


def _f8(value: Decimal) -> str:
    return f"{value.quantize(D('0.00000001')):f}"
