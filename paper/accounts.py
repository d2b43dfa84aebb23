"""One paper account per API key: its own wallets, orders, algos, positions and order counts.

Binance keeps everything a key trades under its account (UID); only the market (prices,
candles, symbols) and the id counters are the exchange's. ``Account`` is what the books see
as their ``engine``: it holds the account's own state and hands the shared market through
to the ``Engine``. ``PACEKEEPER_PAPER_ACCOUNTS=key:secret,…`` adds accounts beside the
configured key's (which stays the first, the one the ``/paper`` routes address by default).
"""

from __future__ import annotations

import string
from decimal import Decimal
from typing import TYPE_CHECKING

from paper.algos import AlgoBook
from paper.futures import FuturesBook
from paper.ledger import Ledger
from paper.marketdata import Candles
from paper.settings import PaperSettings
from paper.spot import SpotBook
from paper.symbols import SymbolSpec
from paper.wallet import Wallet

if TYPE_CHECKING:
    from paper.engine import Engine, Ids

ID_ALPHABET = string.ascii_letters + string.digits


def configured_keys(settings: PaperSettings) -> dict[str, str]:
    """API key -> secret: the configured key first, then ``paper_accounts``."""
    keys = {settings.binance_api_key.get_secret_value(): settings.binance_api_secret}
    raw = settings.paper_accounts.get_secret_value().strip()
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, secret = part.partition(":")
        if not sep or not key or not secret:
            raise ValueError("PACEKEEPER_PAPER_ACCOUNTS must be key:secret pairs, comma-separated")
        keys[key] = type(settings.binance_api_secret)(secret)
    return {k: v.get_secret_value() for k, v in keys.items()}


class Account:
    """The state of one key's account; every method expects the engine's lock to be held."""

    def __init__(
        self,
        engine: Engine,
        key: str,
        spot_balances: dict[str, Decimal],
        futures_balances: dict[str, Decimal],
    ) -> None:
        self.exchange = engine
        self.key = key
        self.spot_wallet = Wallet(spot_balances)
        self.futures_wallet = Wallet(futures_balances)
        self.spot = SpotBook(self)
        self.algos = AlgoBook(self)
        self.futures = FuturesBook(self)

    def on_price(self, symbol: str, price: Decimal) -> None:
        self.spot.on_price(symbol, price)
        if self.exchange.specs[symbol].futures:
            self.futures.on_price(symbol, price)

    # the exchange's, shared by every account ----------------------------------------------

    @property
    def settings(self) -> PaperSettings:
        return self.exchange.settings

    @property
    def now(self) -> int:
        return self.exchange.now

    @property
    def seed(self) -> int:
        return self.exchange.seed

    @property
    def ids(self) -> Ids:
        return self.exchange.ids

    @property
    def ledger(self) -> Ledger:
        return self.exchange.ledger

    @property
    def specs(self) -> dict[str, SymbolSpec]:
        return self.exchange.specs

    @property
    def candles(self) -> dict[str, Candles]:
        return self.exchange.candles

    @property
    def usdm_symbols(self) -> list[str]:
        return self.exchange.usdm_symbols

    def spec(self, symbol: str) -> SymbolSpec:
        return self.exchange.spec(symbol)

    def usdm_spec(self, symbol: str) -> SymbolSpec:
        return self.exchange.usdm_spec(symbol)

    def price(self, symbol: str) -> Decimal:
        return self.exchange.price(symbol)

    def avg_price(self, symbol: str) -> Decimal:
        return self.exchange.avg_price(symbol)

    def random_id(self, length: int = 22, alphabet: str = ID_ALPHABET) -> str:
        return self.exchange.random_id(length, alphabet)

    def visible(self, created_mono: float, lag_s: float) -> bool:
        return self.exchange.visible(created_mono, lag_s)

    def schedule(self, due_ms: int, algo_id: int) -> None:
        self.exchange.schedule(due_ms, algo_id, self.key)
