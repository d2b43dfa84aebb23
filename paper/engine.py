"""The paper exchange's state behind one lock, advanced by a clock.

Time moves in two ways: price ticks every ``paper_tick_seconds`` (each tick moves every price
path, then fires whatever the new prices trigger: resting limits, OCO legs, USD-M conditional
orders) and algo slices at their own due times (a heap, so only due algos are touched). Both
are replayed in time order up to ``clock.now_ms()`` at the start of every request
(``Engine.session``), and by a background task when the clock is real. Nothing here does I/O.
"""

from __future__ import annotations

import heapq
import random
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from paper.accounts import Account, configured_keys
from paper.algos import AlgoBook
from paper.average import AveragePrice
from paper.clock import Clock
from paper.errors import invalid_symbol
from paper.futures import FuturesBook
from paper.ledger import Entry, Ledger
from paper.market import Market, load_klines
from paper.marketdata import Candles
from paper.settings import PaperSettings
from paper.spot import SpotBook
from paper.symbols import DEFAULT_SYMBOLS, SymbolSpec
from paper.wallet import Wallet

D = Decimal
DEFAULT_SPOT_BALANCES = {
    "USDT": D("1000000"),
    "BTC": D("10"),
    "ETH": D("200"),
    "BNB": D("1000"),
    "SOL": D("5000"),
}
DEFAULT_FUTURES_BALANCES = {"USDT": D("1000000")}
# Beyond this many ticks behind (e.g. after a long idle period), jump instead of replaying.
MAX_CATCH_UP_TICKS = 200_000
ID_ALPHABET = string.ascii_letters + string.digits


class Ids:
    """Id counters. Child orders of algos get ids above 2**53 on purpose: clients must keep
    them as exact integers, as Binance's own example (8389765519993908929) requires."""

    def __init__(self) -> None:
        self._next = {
            "order": 1_000_001,
            "list": 1_001,
            "trade": 100_001,
            "algo": 10_001,
            "child": 8_389_765_519_993_900_001,
            "futures_order": 4_000_000_001,
            "futures_trade": 700_001,
            "conditional": 2_146_001,
        }

    def next(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value


class Engine:
    """Everything the exchange knows; every public method expects ``lock`` to be held."""

    def __init__(self, settings: PaperSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        self.specs: dict[str, SymbolSpec] = dict(DEFAULT_SYMBOLS)
        self.replay = load_klines(settings.paper_price_csv) if settings.paper_price_csv else {}
        self.secrets = configured_keys(settings)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        with self.lock:
            self.seed = self.settings.paper_seed if seed is None else seed
            self.rng = random.Random(self.seed)
            self.now = self.clock.now_ms()
            self.tick_ms = max(1, round(self.settings.paper_tick_seconds * 1000))
            self.last_tick = self.now
            self.market = Market(
                self.specs.values(),
                seed=self.seed,
                volatility=self.settings.paper_volatility,
                replay=self.replay,
            )
            self.averages = {s: AveragePrice(self.market.price(s), self.now) for s in self.specs}
            self.candles = {s: Candles(self.market.price(s), self.now) for s in self.specs}
            self.ledger = Ledger()
            self.ids = Ids()
            self._events: list[tuple[int, int, int, str]] = []
            self._event_seq = 0
            self.accounts = {
                key: Account(self, key, dict(DEFAULT_SPOT_BALANCES), dict(DEFAULT_FUTURES_BALANCES))
                for key in self.secrets
            }
            self.default = next(iter(self.accounts.values()))

    # accounts -----------------------------------------------------------------------------

    def account(self, key: str | None = None) -> Account:
        """The account of an API key (the configured key's when None)."""
        return self.default if key is None else self.accounts[key]

    # The configured key's account, as the ``/paper`` routes and older callers address it.
    @property
    def spot(self) -> SpotBook:
        return self.default.spot

    @property
    def algos(self) -> AlgoBook:
        return self.default.algos

    @property
    def futures(self) -> FuturesBook:
        return self.default.futures

    @property
    def spot_wallet(self) -> Wallet:
        return self.default.spot_wallet

    @property
    def futures_wallet(self) -> Wallet:
        return self.default.futures_wallet

    # time ---------------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Engine]:
        """Hold the lock with the state advanced to the clock's current time."""
        with self.lock:
            self.advance_to(self.clock.now_ms())
            yield self

    @contextmanager
    def signed(self, key: str) -> Iterator[Account]:
        """``session()`` for a signed request: the account of the key that signed it."""
        with self.session():
            yield self.accounts[key]

    def sync(self) -> None:
        with self.session():
            pass

    def schedule(self, due_ms: int, algo_id: int, key: str) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (due_ms, self._event_seq, algo_id, key))

    def advance_to(self, now: int) -> None:
        if now <= self.now and not (self._events and self._events[0][0] <= now):
            return
        behind = (now - self.last_tick) // self.tick_ms
        if behind > MAX_CATCH_UP_TICKS:
            self.last_tick += (behind - MAX_CATCH_UP_TICKS) * self.tick_ms
        while True:
            next_tick = self.last_tick + self.tick_ms
            next_event = self._events[0][0] if self._events else None
            if next_event is not None and next_event < next_tick:
                if next_event > now:
                    break
                due, _, algo_id, key = heapq.heappop(self._events)
                self.now = max(self.now, due)
                following = self.accounts[key].algos.run_slice(algo_id, due)
                if following is not None:
                    self.schedule(following, algo_id, key)
                continue
            if next_tick > now:
                break
            self.last_tick = next_tick
            self.now = max(self.now, next_tick)
            self.market.step()
            for symbol in self.specs:
                self.on_price(symbol)
        self.now = max(self.now, now)

    # market -------------------------------------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise invalid_symbol()
        return spec

    def usdm_spec(self, symbol: str) -> SymbolSpec:
        """A symbol listed on USD-M (spot-only symbols such as ETHBTC are invalid there)."""
        spec = self.spec(symbol)
        if not spec.futures:
            raise invalid_symbol()
        return spec

    @property
    def usdm_symbols(self) -> list[str]:
        return [s for s, spec in self.specs.items() if spec.futures]

    def price(self, symbol: str) -> Decimal:
        return self.market.price(symbol)

    def avg_price(self, symbol: str) -> Decimal:
        """What ``GET /api/v3/avgPrice`` answers: the reference of the percent-price filter."""
        return self.averages[symbol].value(self.now)

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.spec(symbol)
        self.market.paths[symbol].set(price)
        self.on_price(symbol)

    def on_price(self, symbol: str) -> None:
        price = self.market.price(symbol)
        self.averages[symbol].record(self.now, price)
        self.candles[symbol].record(price, self.now)
        for account in list(self.accounts.values()):
            account.on_price(symbol, price)

    # helpers shared by the books ----------------------------------------------------------

    def random_id(self, length: int = 22, alphabet: str = ID_ALPHABET) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    @staticmethod
    def visible(created_mono: float, lag_s: float) -> bool:
        """False while a read-after-write lag fault hides a freshly created object."""
        return lag_s <= 0 or time.monotonic() - created_mono >= lag_s

    def ledger_status(self, entry: Entry) -> str:
        account = self.accounts[entry.key]
        if entry.kind == "spot_order":
            return account.spot.orders[entry.id].status
        if entry.kind == "oco":
            return account.spot.oco.lists[entry.id].list_order_status
        if entry.kind in ("spot_twap", "spot_vp", "futures_twap", "futures_vp"):
            return account.algos.algos[entry.id].status
        if entry.kind == "futures_order":
            return account.futures.orders[entry.id].status
        return account.futures.conditional.conditionals[entry.id].status
