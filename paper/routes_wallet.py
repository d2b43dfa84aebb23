"""What a client library asks for while loading markets, beyond spot and USD-M exchangeInfo.

- ``GET /sapi/v1/capital/config/getall`` (USER_DATA): every coin the spot wallet knows, with
  its balance and one network (deposits and withdrawals do not exist on the paper exchange;
  the network entries are there for the shape).
- ``GET /sapi/v1/margin/allPairs`` (MARKET_DATA, API key) and
  ``GET /sapi/v1/margin/isolated/allPairs`` (USER_DATA): margin trading is not offered
  (exchangeInfo says ``isMarginTradingAllowed: false`` for every symbol), so both are empty.
- ``GET /dapi/v1/exchangeInfo``: COIN-M futures are not listed, so no symbols.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from paper.deps import Paper, Signed
from paper.numbers import ZERO, fmt8
from paper.routing import Auth, Route, register
from paper.symbols import FUTURES_RATE_LIMITS

router = APIRouter()

ROUTES: list[Route] = [
    ("GET", "/sapi/v1/margin/allPairs", Auth.KEYED, lambda paper, p: []),
    ("GET", "/sapi/v1/margin/isolated/allPairs", Auth.SIGNED, lambda paper, p: []),
]
register(router, ROUTES)

# coin -> (name, network, withdraw fee, withdraw minimum, withdraw multiple)
COINS = {
    "BTC": ("Bitcoin", "BTC", "0.00001", "0.0001", "0.00000001"),
    "ETH": ("Ethereum", "ETH", "0.0006", "0.0012", "0.00000001"),
    "BNB": ("BNB", "BSC", "0.0005", "0.01", "0.00000001"),
    "SOL": ("Solana", "SOL", "0.002", "0.01", "0.00000001"),
    "USDT": ("TetherUS", "ETH", "3", "10", "0.000001"),
}


@router.get("/sapi/v1/capital/config/getall")
def all_coins(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        wallet = engine.spot_wallet.balances
        rows = []
        for coin in sorted(set(COINS) | set(wallet)):
            name, network, fee, minimum, multiple = COINS.get(
                coin, (coin, coin, "0", "0", "0.00000001")
            )
            balance = wallet.get(coin)
            rows.append(
                {
                    "coin": coin,
                    "depositAllEnable": True,
                    "free": fmt8(balance.free if balance else ZERO),
                    "freeze": "0.00000000",
                    "ipoable": "0.00000000",
                    "ipoing": "0.00000000",
                    "isLegalMoney": False,
                    "locked": fmt8(balance.locked if balance else ZERO),
                    "name": name,
                    "networkList": [
                        {
                            "addressRegex": "",
                            "coin": coin,
                            "depositDesc": "",
                            "depositEnable": True,
                            "isDefault": True,
                            "memoRegex": "",
                            "minConfirm": 12,
                            "name": network,
                            "network": network,
                            "specialTips": "",
                            "unLockConfirm": 0,
                            "withdrawDesc": "",
                            "withdrawEnable": True,
                            "withdrawFee": fee,
                            "withdrawIntegerMultiple": multiple,
                            "withdrawMax": "9999999999.99999999",
                            "withdrawMin": minimum,
                            "withdrawInternalMin": multiple,
                            "sameAddress": False,
                            "estimatedArrivalTime": 5,
                            "busy": False,
                            "contractAddressUrl": "",
                            "contractAddress": "",
                            "denomination": 1,
                        }
                    ],
                    "storage": "0.00000000",
                    "trading": True,
                    "withdrawAllEnable": True,
                    "withdrawing": "0.00000000",
                }
            )
        return JSONResponse(rows)


@router.get("/dapi/v1/exchangeInfo")
def coin_m_exchange_info(paper: Paper) -> Response:
    return JSONResponse(
        {
            "timezone": "UTC",
            "serverTime": paper.server_ms(),
            "rateLimits": FUTURES_RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [],
        }
    )
