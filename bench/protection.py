"""Never naked, measured: every position sampled at every monitor cycle through a scenario battery.

    .venv/bin/python bench/protection.py                       # 2 seeds, TWAPs of 60-600 s
    .venv/bin/python bench/protection.py --seeds 5 --every-duration -v
    .venv/bin/python bench/protection.py --scenarios gap,two-strategies --markets usdm
    .venv/bin/python bench/protection.py --database-url postgresql+psycopg://postgres@127.0.0.1/db

Scenarios (``SCENARIOS``), spot and USD-M unless noted: a TWAP entry whose fills arrive over
its duration, then an exit; a small one (fills below one order's worth an interval); an exit
the planner refuses half-way through the entry; an exit the exchange rejects half-way through
it; a cancel signal half-way through it; a TWAP exit that falls behind and is cancelled; the
price falling through the stop while the entry buys; a gap past a stop-limit's limit (one
``POST /paper/price`` jump) after the entry filled, and back; two strategies on one USD-M
symbol, one exiting while the other buys (USD-M); an entry that fills nothing; an exit with no
entry. On request only (``--scenarios``): two strategies on opposite sides of one USD-M symbol,
a known limit. Each run ends by closing what is left and probing a new entry for the same
strategy and symbol. Cases: each seed on each market, the durations (``--durations``) in turn,
or all of them (``--every-duration``).

The paper exchange runs in this process (uvicorn on 127.0.0.1, its own thread) on a manual
clock, without its per-minute weight limits (nor has the client any: ten minutes of exchange
time pass in a second); signals go through the execution layer itself (``prepare``/``record``,
then ``process_signal`` as the worker runs it, again while it answers ``queued``) and the
monitor runs ``run_cycle`` once per interval of exchange time. The database is a fresh SQLite
file (or ``--database-url``, migrated; emptied between runs). No Redis: the monitor's lock is
this process's own.

The oracle is the exchange, not our database. After every cycle the checker reads the paper's
ledger (every order it accepted, with its live status), balances, positions and open-order
counts, and for each position compares

* filled: what it holds net (``held``: its entry fills net of base-asset fees, less what exits
  closed), cross-checked per symbol against the exchange (spot: the base-asset balance against
  the start; USD-M: ``positionAmt``): exchange holdings no position accounts for are naked too;
* covered: the quantity of the position's live stop-carrying orders *on the exchange* (found
  by the client ids of its bracket rows): an OCO list still ``EXECUTING`` (a triggered leg ends
  the list), a spot STOP_LOSS / STOP_LOSS_LIMIT still ``NEW`` and not yet triggered by the
  last price, a USD-M STOP / STOP_MARKET conditional still ``NEW``. A leg that outlived its
  list (a stop-limit the price gapped past, resting unfilled) protects nothing but can still
  sell: when the paper's open-order count says one exists, ``GET /api/v3/openOrders`` finds it.

A position with a close working on the exchange (a live exit/close order) is being closed, not
naked. Less than one lot (the fee remainder of a spot buy) is not a unit any order can sell.
A fill during an interval is judged at the end of that interval, so naked quantity at a sample
is naked *beyond one monitor interval*; each sample stands for one interval.

Figures, per scenario and in total:

* unprotected share: naked quantity·seconds / filled quantity·seconds (aim <= 0.1 %);
* longest naked window: ``<= interval`` when no position was ever naked at a sample (every
  fill covered by the end of the interval it arrived in), else ``<= (k + 1) * interval`` for
  k consecutive naked samples (aim: one interval plus one request);
* oversold: base quantity sold beyond positions (must be 0): spot, the base-asset balance
  below its start (sells beyond what our signals bought); USD-M, ``positionAmt`` past zero
  against our positions; at samples, the exchange holding below what our positions hold; per
  position, exits beyond what it received;
* stale refusals: the probe entry refused because a position or entry is "still live";
* over-cover: samples where a position's live orders could sell more than it holds (a
  bracket above the holding, two generations live, a leg left resting, any order of a
  closed position); drift: the largest |exchange - database| holding of a symbol.

Bounded: each run is a scripted number of cycles; the default battery takes 1-2 minutes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.config import Settings
from app.db import Base, make_engine, make_sessionmaker
from app.exchange.client import BinanceClient
from app.exchange.filters import Market
from app.exchange.ratelimit import LIMITS, RateGovernor
from app.execution.context import ExecContext
from app.execution.protection import held
from app.execution.service import Outcome, process_signal
from app.models import Order, Position, Signal, utcnow
from app.monitoring.service import run_cycle
from app.signals.service import prepare, record
from paper.settings import PaperSettings

D = Decimal
ZERO = D(0)
SYMBOL = "BTCUSDT"
START_PRICE = D("65000")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "STOP", "STOP_MARKET")
LIVE = ("NEW", "PARTIALLY_FILLED", "WORKING", "EXECUTING")
SIGNAL_PENDING = ("received", "queued", "processing", "working")
CLOSING = ("exit", "close")
STALE = "still live"


# ---- figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    """What the checker saw over one run (or several, added up)."""

    runs: int = 0
    samples: int = 0
    filled_qs: Decimal = ZERO  # quantity·seconds held
    naked_qs: Decimal = ZERO  # quantity·seconds held and not covered (nor being closed)
    longest_run: int = 0  # consecutive naked samples of one position
    oversold: Decimal = ZERO
    stale: int = 0
    over_cover: int = 0
    drift: Decimal = ZERO
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> Decimal:
        return self.naked_qs / self.filled_qs if self.filled_qs else ZERO

    def add(self, other: Figures) -> None:
        self.runs += other.runs
        self.samples += other.samples
        self.filled_qs += other.filled_qs
        self.naked_qs += other.naked_qs
        self.longest_run = max(self.longest_run, other.longest_run)
        self.oversold += other.oversold
        self.stale += other.stale
        self.over_cover += other.over_cover
        self.drift = max(self.drift, other.drift)
        self.notes += other.notes

    def note(self, text: str) -> None:
        if len(self.notes) < 20 and text not in self.notes:
            self.notes.append(text)


# ---- the checker --------------------------------------------------------------------------


class Checker:
    """Samples every position against the exchange; see the module docstring."""

    def __init__(self, ctx: ExecContext, control: httpx.Client, interval: float) -> None:
        self.ctx, self.control, self.interval = ctx, control, interval
        self.figures = Figures(runs=1)
        self.start_balances = self._balances()
        self._naked_runs: dict[str, int] = {}
        self._oversold: dict[str, Decimal] = {}

    def _get(self, path: str) -> Any:
        response = self.control.get(path)
        response.raise_for_status()
        return response.json()

    def _balances(self) -> dict[str, Decimal]:
        spot = self._get("/balances")["spot"]
        return {asset: D(b["free"]) + D(b["locked"]) for asset, b in spot.items()}

    def _lot(self, market: str, symbol: str) -> Decimal:
        """The symbol's lot step: less than this is dust no order can sell, not a holding."""
        rules = self.ctx.client.symbol_rules(symbol, Market(market))
        return rules.lot.step_size if rules.lot is not None else ZERO

    def _read(self) -> tuple[list[Position], dict[int, list[Order]]]:
        with self.ctx.sessions() as session:
            positions = list(session.scalars(select(Position).order_by(Position.id)))
            rows: dict[int, list[Order]] = {}
            for order in session.scalars(
                select(Order).where(Order.position_id.is_not(None)).order_by(Order.id)
            ):
                assert order.position_id is not None
                rows.setdefault(order.position_id, []).append(order)
            session.expunge_all()
        return positions, rows

    def sample(self) -> None:
        """One sample, standing for the interval that follows it."""
        figures = self.figures
        figures.samples += 1
        positions, rows = self._read()
        entries = self._get("/ledger")["entries"]
        ledger = {e["client_id"]: e for e in entries}
        state = self._get("/state")
        prices = {s: D(p) for s, p in state["prices"].items()}
        orphans = self._orphan_legs(entries, state)
        naked: dict[str, Decimal] = {}
        filled = ZERO
        for position in positions:
            key = f"position {position.id} ({position.strategy} {position.market})"
            mine = rows.get(position.id, [])
            live = [
                (o, e)
                for o in mine
                if _bracket(o) and (e := ledger.get(o.client_id)) and e["status"] in LIVE
            ]
            # Legs a done list left working (a triggered stop-limit resting past its limit):
            # they protect nothing, but they can still sell.
            resting = sum((orphans.get(o.client_id, ZERO) for o in mine if _bracket(o)), ZERO)
            holding = held(position) if position.status == "open" else ZERO
            largest = max((D(e["quantity"] or 0) for _, e in live), default=ZERO)
            covered = sum((self._covers(o, e, prices[position.symbol]) for o, e in live), ZERO)
            selling = max(largest, covered) + resting
            if selling > holding:
                figures.over_cover += 1
                figures.note(f"{key} holds {holding}, live orders could sell {selling}")
            if position.status != "open":
                left = (position.quantity or ZERO) - (position.exit_quantity or ZERO)
                if left >= self._lot(position.market, position.symbol):
                    # Closed in our books while the account still holds it: nothing protects it.
                    filled += left
                    naked[key] = left
                    figures.note(f"{key} closed holding {left}")
                continue
            if holding <= 0:
                continue
            filled += holding
            closing = any(
                o.leg.startswith(CLOSING)
                and (e := ledger.get(o.client_id)) is not None
                and e["status"] in LIVE
                for o in mine
            )
            # Less than one lot (the fee remainder of a spot buy) cannot be sold by any order.
            if not closing and holding - covered >= self._lot(position.market, position.symbol):
                naked[key] = holding - covered
        for key, quantity in self._accounts(positions, state, sample=True).items():
            filled += quantity
            naked[key] = quantity
        short = sum(naked.values(), ZERO)
        figures.filled_qs += filled * D(str(self.interval))
        figures.naked_qs += short * D(str(self.interval))
        for key in list(self._naked_runs):
            if key not in naked:
                del self._naked_runs[key]
        for key, quantity in naked.items():
            run = self._naked_runs.get(key, 0) + 1
            self._naked_runs[key] = run
            figures.longest_run = max(figures.longest_run, run)
            if run == 2:
                figures.note(f"{key}: {quantity} naked at two consecutive samples")

    def _orphan_legs(
        self, entries: list[dict[str, Any]], state: dict[str, Any]
    ) -> dict[str, Decimal]:
        """Open spot orders the ledger's statuses do not account for: legs of OCO lists that
        ended while the leg still works. Keyed by the list's client id, their open quantity.
        The paper's open-order count tells whether there are any; only then are the open
        orders read (``GET /api/v3/openOrders``, weight 80), so the checker's own requests
        rarely weigh on the engine's budget."""
        expected = sum(
            2 if e["kind"] == "oco" else 1
            for e in entries
            if e["kind"] in ("oco", "spot_order") and e["status"] in LIVE
        )
        if state["open"]["spot_orders"] <= expected:
            return {}
        lists = {
            leg: e["client_id"]
            for e in entries
            if e["kind"] == "oco" and e["status"] not in LIVE
            for name, leg in e["client_ids"].items()
            if name != "list"
        }
        out: dict[str, Decimal] = {}
        for order in self.ctx.client.open_orders():
            owner = lists.get(order.clientOrderId)
            if owner is None:
                continue
            left = (order.origQty or ZERO) - (order.executedQty or ZERO)
            out[owner] = out.get(owner, ZERO) + left
            self.figures.note(f"OCO {owner}: leg {order.type} {left} still works")
        return out

    @staticmethod
    def _covers(order: Order, entry: dict[str, Any] | None, last: Decimal) -> Decimal:
        """The quantity this bracket order protects with a stop right now, on the exchange."""
        if entry is None or entry["status"] not in LIVE:
            return ZERO
        quantity = D(entry["quantity"] or 0)
        types = entry["order_type"].split("/")
        if not any(t in STOP_TYPES for t in types):
            return ZERO  # a take-profit alone
        if entry["kind"] == "spot_order" and order.stop_price is not None:
            # A spot stop order stays NEW once triggered; triggered and unfilled, it rests
            # as a limit the price has passed.
            sell = order.side == "SELL"
            if (last <= order.stop_price) if sell else (last >= order.stop_price):
                return ZERO
        return quantity

    def _accounts(
        self, positions: list[Position], state: dict[str, Any], *, sample: bool
    ) -> dict[str, Decimal]:
        """Oversold quantities, and (at a sample, when every fill is recorded) exchange
        holdings no position accounts for: naked, keyed by symbol."""
        out: dict[str, Decimal] = {}
        balances = {
            asset: D(b["free"]) + D(b["locked"]) for asset, b in state["balances"]["spot"].items()
        }
        amounts = {s: D(p["positionAmt"]) for s, p in state["positions"].items()}
        for market, symbol in sorted({(p.market, p.symbol) for p in positions}):
            ours = [p for p in positions if (p.market, p.symbol) == (market, symbol)]
            book = sum(
                (
                    ((p.quantity or ZERO) - (p.exit_quantity or ZERO))
                    * (1 if p.side == "BUY" else -1)
                    for p in ours
                ),
                ZERO,
            )
            for p in ours:
                beyond = (p.exit_quantity or ZERO) - (p.quantity or ZERO)
                self._sold(f"position {p.id}", beyond)
            sides = {p.side for p in ours}
            # +1: our positions on it are long (their exchange holding must not fall below
            # zero), -1 short; mixed: the sign of their sum.
            sign = 1 if sides == {"BUY"} or (len(sides) > 1 and book > 0) else -1
            if len(sides) > 1 and book == 0:
                sign = 0
            if market == "spot":
                base = symbol.removesuffix("USDT")
                exchange = balances.get(base, ZERO) - self.start_balances.get(base, ZERO)
            else:
                exchange = amounts.get(symbol, ZERO)
            beyond = -exchange * sign  # sold past zero (spot: below the starting balance)
            drift = (exchange - book) * sign  # > 0: held and not ours; < 0: sold beyond ours
            if sample:
                self.figures.drift = max(self.figures.drift, abs(exchange - book))
                beyond = max(beyond, -drift)
                if drift >= self._lot(market, symbol):
                    self.figures.note(f"{market} {symbol}: exchange {exchange}, positions {book}")
                    out[f"{market} {symbol} held by no position"] = drift
            self._sold(f"{market} {symbol}", beyond)
        return out

    def _sold(self, key: str, quantity: Decimal) -> None:
        if quantity <= 0:
            return
        before = self._oversold.get(key, ZERO)
        if quantity > before:
            self._oversold[key] = quantity
            self.figures.oversold += quantity - before
            self.figures.note(f"{key}: sold {quantity} beyond what it bought")

    def account_check(self) -> None:
        """Oversold and drift only (after a job, between cycles): no time passes."""
        positions, _ = self._read()
        self._accounts(positions, self._get("/state"), sample=False)


def _bracket(order: Order) -> bool:
    return order.leg.startswith("bracket")


# ---- the driver ---------------------------------------------------------------------------


class Run:
    """One scenario run: the exchange reset to a seed, an empty database, signals through the
    execution layer, a monitor cycle per interval, a sample after each."""

    def __init__(
        self,
        ctx: ExecContext,
        control: httpx.Client,
        *,
        seed: int,
        interval: float,
        volatility: Decimal,
    ) -> None:
        self.ctx, self.control, self.interval = ctx, control, interval
        clear_database(ctx)
        self.paper("POST", "/reset", {"seed": seed})
        self.paper("POST", "/volatility", {"volatility": str(volatility)})
        self.paper("POST", "/algo-fill", {"ratio": "1"})
        self.set_price(START_PRICE)
        self.market_ms = int(self.paper("POST", "/clock", {"advance": 0})["time"])
        self.checker = Checker(ctx, control, interval)
        self.pending: list[str] = []

    @property
    def figures(self) -> Figures:
        return self.checker.figures

    def paper(self, method: str, path: str, body: Any = None) -> Any:
        response = self.control.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def set_price(self, price: Decimal) -> None:
        self.paper("POST", "/price", {"symbol": SYMBOL, "price": str(price)})

    def price(self) -> Decimal:
        return D(self.paper("GET", "/state")["prices"][SYMBOL])

    def fault(self, **spec: Any) -> None:
        self.paper("POST", "/faults", spec)

    # signals

    def signal(self, **fields: Any) -> Outcome:
        """Store a signal as the receiver would and run it as the worker would."""
        raw = {"symbol": SYMBOL, "id": uuid.uuid4().hex, **fields}
        settings = self.ctx.settings
        prepared = prepare(
            {k: v for k, v in raw.items() if v is not None},
            now=utcnow(),
            dedupe_window=60,
            twap_min_duration=settings.twap_min_duration,
            twap_max_duration=settings.twap_max_duration,
        )
        signal_id = record(self.ctx.sessions.kw["bind"], prepared, now=utcnow()).signal_id
        return self._process(signal_id)

    def _process(self, signal_id: str) -> Outcome:
        outcome = process_signal(self.ctx, signal_id)
        if outcome.status == "queued" and signal_id not in self.pending:
            self.pending.append(signal_id)
        self.checker.account_check()
        return outcome

    def entry(
        self,
        market: str,
        strategy: str,
        quantity: Decimal,
        *,
        duration: int | None = None,
        stop_loss: Any = None,
        side: str = "buy",
    ) -> Outcome:
        """An entry with take-profit and stop-loss 8 % either side of the price."""
        price = self.price()
        up, down = (price * D("1.08")).quantize(D(1)), (price * D("0.92")).quantize(D(1))
        tp, sl = (up, down) if side == "buy" else (down, up)
        execution = {"type": "twap", "duration": duration} if duration else {"type": "market"}
        return self.signal(
            action="entry", market=market, side=side, strategy=strategy,
            quantity=str(quantity), execution=execution, take_profit=str(tp),
            stop_loss=stop_loss or str(sl),
        )  # fmt: skip

    def exit(self, market: str, strategy: str, **fields: Any) -> Outcome:
        return self.signal(action="exit", market=market, strategy=strategy, **fields)

    # time

    def step(self, cycles: int = 1) -> None:
        """``cycles`` monitor intervals: time passes, queued jobs run again, the monitor
        cycles, the checker samples."""
        for _ in range(cycles):
            answer = self.paper("POST", "/clock", {"advance": self.interval})
            self.market_ms = int(answer["time"])
            for signal_id in list(self.pending):
                self.pending.remove(signal_id)
                self._process(signal_id)
            run_cycle(self.ctx, now_ms=lambda: self.market_ms)
            self.checker.sample()

    def until(self, done: Callable[[], bool], *, limit: int) -> bool:
        for _ in range(limit):
            if done():
                return True
            self.step()
        return done()

    def settled(self) -> bool:
        """Every position closed, every signal at rest, no job waiting."""
        with self.ctx.sessions() as session:
            open_ = session.scalar(select(Position.id).where(Position.status == "open"))
            busy = session.scalar(select(Signal.id).where(Signal.status.in_(SIGNAL_PENDING)))
        return open_ is None and busy is None and not self.pending

    def signal_status(self, signal_id: str) -> str:
        with self.ctx.sessions() as session:
            row = session.get(Signal, signal_id)
            assert row is not None
            return str(row.status)

    def working(self, signal_id: str) -> bool:
        return self.signal_status(signal_id) in SIGNAL_PENDING

    # the end of every scenario

    def finish(self, pairs: Iterable[tuple[str, str]], *, limit: int = 40) -> None:
        """Close what is left, wait for it, then probe each (market, strategy): a new entry
        must not be refused by a stale position or entry."""
        pairs = list(pairs)
        for market, strategy in pairs:
            if self.open_positions(market, strategy):
                self.exit(market, strategy)
        if not self.until(self.settled, limit=limit):
            self.figures.note(f"not settled after {limit} cycles: {self.open_summary()}")
        for market, strategy in pairs:
            outcome = self.entry(market, strategy, D("0.01"))
            if outcome.status == "refused" and STALE in (outcome.reason or ""):
                self.figures.stale += 1
                self.figures.note(f"stale refusal ({market} {strategy}): {outcome.reason}")
                continue
            if outcome.status != "done":
                self.figures.note(f"probe entry {outcome.status}: {outcome.reason}")
            self.step()
            self.exit(market, strategy)
            self.step()
        if not self.until(self.settled, limit=10):
            self.figures.note(f"probe not settled: {self.open_summary()}")

    def open_positions(self, market: str, strategy: str) -> list[Position]:
        with self.ctx.sessions() as session:
            return list(
                session.scalars(
                    select(Position).where(
                        Position.status == "open",
                        Position.market == market,
                        Position.strategy == strategy,
                    )
                )
            )

    def open_summary(self) -> str:
        with self.ctx.sessions() as session:
            rows = session.scalars(select(Position).where(Position.status == "open"))
            return ", ".join(
                f"#{p.id} {p.market} held {held(p)} ({p.bracket_note})" for p in rows
            ) or ("jobs waiting" if self.pending else "signals working")


def unthrottled() -> RateGovernor:
    """A governor without weight budgets: they are per wall-clock minute, and on a manual
    clock ten minutes of exchange time pass in a second (the paper runs without its limits),
    and no order-count limits (the paper's counts are per wall-clock 10 s and day)."""
    return RateGovernor(limits={k: 10**9 for k in LIMITS}, order_limits={})


def clear_database(ctx: ExecContext) -> None:
    engine = ctx.sessions.kw["bind"]
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


# ---- the scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    scenario: str
    market: str
    duration: int
    seed: int

    @property
    def strategy(self) -> str:
        return f"{self.scenario}-{self.seed}"

    def cycles(self, interval: float, fraction: float = 1.0) -> int:
        return max(1, round(self.duration * fraction / interval))


def quantity(case: Case) -> Decimal:
    """0.2-0.4 BTC, by seed: 13,000-26,000 USDT, inside the TWAP notional bounds."""
    return D("0.2") + D(case.seed % 5) * D("0.05")


def order_path(market: str) -> str:
    return "/api/v3/order" if market == "spot" else "/fapi/v1/order"


def twap_entry(run: Run, case: Case) -> None:
    """A TWAP entry whose fills arrive over its duration, then an exit at market."""
    sid = run.entry(case.market, case.strategy, quantity(case), duration=case.duration).signal_id
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.step(2)
    run.finish([(case.market, case.strategy)])


def small_entry(run: Run, case: Case) -> None:
    """A TWAP entry near the minimum notional (0.02 BTC, 1,300 USDT): each interval's fills
    are smaller than one order's worth (USD-M: 100 USDT, 0.002 BTC), then an exit."""
    sid = run.entry(case.market, case.strategy, D("0.02"), duration=case.duration).signal_id
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.step(2)
    run.finish([(case.market, case.strategy)])


def exit_refused(run: Run, case: Case) -> None:
    """Half-way through the entry, an exit the planner refuses (a TWAP below the minimum
    notional): nothing may be touched. Then a real exit."""
    sid = run.entry(case.market, case.strategy, quantity(case), duration=case.duration).signal_id
    run.step(case.cycles(run.interval, 0.5))
    refused = run.exit(
        case.market, case.strategy, quantity="0.01", execution={"type": "twap", "duration": 60}
    )
    if refused.status != "refused":
        run.figures.note(f"the small TWAP exit was {refused.status}: {refused.reason}")
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.step(2)
    run.finish([(case.market, case.strategy)])


def exit_rejected(run: Run, case: Case) -> None:
    """Half-way through the entry, an exit the exchange rejects: the entry is stopped and
    the bracket comes back in the same job. Later, an exit that works."""
    run.entry(case.market, case.strategy, quantity(case), duration=case.duration)
    run.step(case.cycles(run.interval, 0.5))
    run.fault(action="fail_before", path=order_path(case.market), method="POST", status=400,
              code=-2010, msg="Account has insufficient balance for requested action.",
              count=1)  # fmt: skip
    sid = run.exit(case.market, case.strategy).signal_id
    # It may wait for the cancelled entry's final fills (queued, run again each cycle).
    run.until(lambda: sid not in run.pending, limit=10)
    if (status := run.signal_status(sid)) != "failed":
        run.figures.note(f"the rejected exit was {status}")
    run.paper("DELETE", "/faults")
    run.step(4)
    run.finish([(case.market, case.strategy)])


def cancelled_entry(run: Run, case: Case) -> None:
    """Half-way through the entry, a cancel signal for the strategy on the symbol: the
    position keeps what the entry bought, protected."""
    run.entry(case.market, case.strategy, quantity(case), duration=case.duration)
    run.step(case.cycles(run.interval, 0.5))
    cancel = run.signal(action="cancel", market=case.market, strategy=case.strategy)
    run.until(lambda: cancel.signal_id not in run.pending, limit=10)
    run.step(4)
    run.finish([(case.market, case.strategy)])


def twap_exit(run: Run, case: Case) -> None:
    """A filled position closed by a TWAP exit that fills half of each slice: it falls
    behind, the monitor cancels it, and what it left is protected again; then an exit."""
    sid = run.entry(case.market, case.strategy, quantity(case), duration=case.duration).signal_id
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.step()
    run.paper("POST", "/algo-fill", {"ratio": "0.5"})
    exit_id = run.exit(
        case.market, case.strategy, execution={"type": "twap", "duration": case.duration}
    ).signal_id
    run.until(lambda: not run.working(exit_id), limit=case.cycles(run.interval) + 10)
    run.paper("POST", "/algo-fill", {"ratio": "1"})
    run.step(3)
    run.finish([(case.market, case.strategy)])


def crossed_stop(run: Run, case: Case) -> None:
    """A third of the way through the entry the price falls through the stop: the exchange's
    stop sells what it covered, the monitor cancels the entry and closes the rest."""
    run.entry(case.market, case.strategy, quantity(case), duration=case.duration)
    run.step(case.cycles(run.interval, 1 / 3))
    run.set_price(run.price() * D("0.90"))
    run.step(2)
    run.finish([(case.market, case.strategy)])


def gap(run: Run, case: Case) -> None:
    """A filled position with a stop-limit; the price jumps past the limit (a gap): the
    triggered stop cannot fill, the position must be stopped out."""
    price = run.price()
    stop = (price * D("0.92")).quantize(D(1))
    stop_loss = {"stop_price": str(stop), "limit_price": str(stop - 50), "type": "limit"}
    sid = run.entry(
        case.market, case.strategy, quantity(case), duration=case.duration, stop_loss=stop_loss
    ).signal_id
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.step()
    run.set_price(stop - 1000)  # POST /paper/price: one jump, no price in between
    run.step(3)
    run.set_price(price)  # and back: whatever still rests at the stop's limit fills now
    run.step(2)
    run.finish([(case.market, case.strategy)])


def two_strategies(run: Run, case: Case) -> None:
    """Two strategies on one USD-M symbol: alpha's exit half-way through must neither touch
    beta's position nor leave beta's protection short."""
    alpha, beta = f"{case.strategy}-alpha", f"{case.strategy}-beta"
    run.entry(case.market, alpha, quantity(case), duration=case.duration)
    run.step(case.cycles(run.interval, 0.25))
    half = max(run.ctx.settings.twap_min_duration, case.duration // 2)
    run.entry(case.market, beta, quantity(case) / 2, duration=half)
    run.step(case.cycles(run.interval, 0.25))
    run.exit(case.market, alpha)
    run.step(case.cycles(run.interval, 0.5) + 2)
    run.finish([(case.market, alpha), (case.market, beta)])


def opposite_strategies(run: Run, case: Case) -> None:
    """Two strategies on opposite sides of one USD-M symbol. Not in the default battery: in
    one-way mode the exchange nets them into one position, so the smaller side's reduce-only
    bracket is rejected (-2022) and the exits close each other's share (a known limit)."""
    alpha, beta = f"{case.strategy}-alpha", f"{case.strategy}-beta"
    run.entry(case.market, alpha, quantity(case), duration=case.duration)
    run.step(case.cycles(run.interval, 0.25))
    run.entry(case.market, beta, quantity(case) / 2, duration=case.duration, side="sell")
    run.step(case.cycles(run.interval) + 2)
    run.finish([(case.market, alpha), (case.market, beta)])


def zero_fill(run: Run, case: Case) -> None:
    """A TWAP entry that fills nothing (every child stalls): the monitor cancels it as
    behind, its position closes empty, and the next entry is not refused."""
    run.paper("POST", "/algo-fill", {"ratio": "0"})
    sid = run.entry(case.market, case.strategy, quantity(case), duration=case.duration).signal_id
    run.until(lambda: not run.working(sid), limit=case.cycles(run.interval) + 10)
    run.paper("POST", "/algo-fill", {"ratio": "1"})
    run.step()
    run.finish([(case.market, case.strategy)])


def exit_without_entry(run: Run, case: Case) -> None:
    """An exit with no position: refused, nothing sold."""
    outcome = run.exit(case.market, case.strategy, side="sell", quantity="0.05")
    if outcome.status != "refused":
        run.figures.note(f"the exit without a position was {outcome.status}: {outcome.reason}")
    run.step()
    run.finish([(case.market, case.strategy)])


Scenario = Callable[[Run, Case], None]
SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {
    "twap-entry": (twap_entry, ("spot", "usdm")),
    "small-entry": (small_entry, ("spot", "usdm")),
    "exit-refused": (exit_refused, ("spot", "usdm")),
    "exit-rejected": (exit_rejected, ("spot", "usdm")),
    "cancelled-entry": (cancelled_entry, ("spot", "usdm")),
    "twap-exit": (twap_exit, ("spot", "usdm")),
    "crossed-stop": (crossed_stop, ("spot", "usdm")),
    "gap": (gap, ("spot", "usdm")),
    "two-strategies": (two_strategies, ("usdm",)),
    "zero-fill": (zero_fill, ("spot", "usdm")),
    "exit-no-entry": (exit_without_entry, ("spot", "usdm")),
    "opposite-strategies": (opposite_strategies, ("usdm",)),
}
# Run by default; the others on request (--scenarios): they show known limits.
DEFAULT = tuple(name for name in SCENARIOS if name != "opposite-strategies")
# A scenario whose duration does not matter runs with the first one only.
ONE_DURATION = ("exit-no-entry",)


def cases(
    seeds: Iterable[int],
    durations: Iterable[int],
    *,
    scenarios: Iterable[str] | None = None,
    markets: Iterable[str] = ("spot", "usdm"),
    every_duration: bool = False,
) -> list[Case]:
    """The battery: each scenario on each of its markets with each seed, and the durations
    in turn (so two seeds on two markets see four durations), or ``every_duration``."""
    seeds, durations, markets = list(seeds), list(durations), list(markets)
    out = []
    for k, name in enumerate(scenarios or DEFAULT):
        _, allowed = SCENARIOS[name]
        for m, market in enumerate(x for x in allowed if x in markets):
            for n, seed in enumerate(seeds):
                if name in ONE_DURATION:
                    chosen = durations[:1]
                elif every_duration:
                    chosen = durations
                else:
                    chosen = [durations[(k + m + 2 * n) % len(durations)]]
                out += [Case(name, market, duration, seed) for duration in chosen]
    return out


def run_case(
    ctx: ExecContext,
    control: httpx.Client,
    case: Case,
    *,
    interval: float,
    volatility: Decimal = D("0.0002"),
) -> Figures:
    run = Run(ctx, control, seed=case.seed, interval=interval, volatility=volatility)
    try:
        SCENARIOS[case.scenario][0](run, case)
    finally:
        control.delete("/faults")
    return run.figures


def battery(
    ctx: ExecContext,
    control: httpx.Client,
    battery_cases: Iterable[Case],
    *,
    interval: float,
    volatility: Decimal = D("0.0002"),
    progress: Callable[[Case, Figures, float], None] | None = None,
) -> dict[tuple[str, str], Figures]:
    """Every case, its figures added up per (scenario, market)."""
    totals: dict[tuple[str, str], Figures] = {}
    for case in battery_cases:
        started = time.perf_counter()
        figures = run_case(ctx, control, case, interval=interval, volatility=volatility)
        for note in figures.notes:
            figures.notes[figures.notes.index(note)] = f"{case}: {note}"
        totals.setdefault((case.scenario, case.market), Figures()).add(figures)
        if progress is not None:
            progress(case, figures, time.perf_counter() - started)
    return totals


# ---- the table ----------------------------------------------------------------------------


def longest(figures: Figures, interval: float) -> str:
    return f"<= {(figures.longest_run + 1) * interval:g} s"


def table(totals: dict[tuple[str, str], Figures], interval: float) -> str:
    head = (
        f"{'scenario':<19} {'market':<6} {'runs':>4} {'samples':>7} {'filled q·s':>11} "
        f"{'naked q·s':>10} {'share':>8} {'longest naked':>13} {'oversold':>8} {'stale':>5} "
        f"{'over-cover':>10} {'drift':>8}"
    )
    lines = [head, "-" * len(head)]
    total = Figures()

    def line(name: str, market: str, f: Figures) -> str:
        return (
            f"{name:<19} {market:<6} {f.runs:>4} {f.samples:>7} {f.filled_qs:>11.2f} "
            f"{f.naked_qs:>10.4f} {f.share * 100:>7.3f}% {longest(f, interval):>13} "
            f"{f.oversold.normalize():>8f} {f.stale:>5} {f.over_cover:>10} "
            f"{f.drift.normalize():>8f}"
        )

    for (name, market), figures in totals.items():
        lines.append(line(name, market, figures))
        total.add(figures)
    lines += ["-" * len(head), line("total", "", total)]
    return "\n".join(lines)


# ---- running it alone ---------------------------------------------------------------------


@contextmanager
def paper_exchange(settings: PaperSettings) -> Iterator[str]:
    """The paper exchange on a manual clock, served on a free port in a thread."""
    import socket

    import uvicorn

    from paper.app import create_app
    from paper.clock import ManualClock

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(settings, clock=ManualClock())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the paper exchange did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=2, help="seeds 1..N (default 2)")
    parser.add_argument("--durations", default="60,120,300,600", help="TWAP seconds, in turn")
    parser.add_argument(
        "--every-duration", action="store_true", help="each case with every duration"
    )
    parser.add_argument("--scenarios", default=",".join(DEFAULT), help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument("--markets", default="spot,usdm")
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval, s")
    parser.add_argument("--volatility", default="0.0002", help="paper price volatility per s")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per run")
    args = parser.parse_args(argv)
    from app import migrate

    # The exchange's refusals the scenarios provoke are logged as warnings: -v shows them.
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)

    base = Settings(
        _env_file=None,
        env="test",
        twap_min_duration=10,
        monitor_interval=args.interval,
        queue_name=f"bench-protection-{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
    )
    battery_cases = cases(
        range(1, args.seeds + 1),
        [int(d) for d in args.durations.split(",")],
        scenarios=[s for s in args.scenarios.split(",") if s],
        markets=[m for m in args.markets.split(",") if m],
        every_duration=args.every_duration,
    )
    paper = PaperSettings(
        _env_file=None,
        twap_min_duration=10,
        paper_volatility=D(args.volatility),
        paper_rate_limits=False,
    )
    with tempfile.TemporaryDirectory() as tmp, paper_exchange(paper) as url:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(database_url)
        settings = base.model_copy(
            update={"binance_api_url": url, "binance_fapi_url": url, "database_url": database_url}
        )
        engine = make_engine(database_url)
        with httpx.Client(timeout=30) as http, httpx.Client(base_url=f"{url}/paper") as control:
            client = BinanceClient(http, settings, governor=unthrottled())
            ctx = ExecContext(settings, client, make_sessionmaker(engine))

            def progress(case: Case, figures: Figures, seconds: float) -> None:
                if args.verbose:
                    print(
                        f"{case.scenario:<19} {case.market:<5} D={case.duration:<4} "
                        f"seed={case.seed} samples={figures.samples:<4} "
                        f"share={figures.share * 100:.3f}% naked-run={figures.longest_run} "
                        f"oversold={figures.oversold} stale={figures.stale} ({seconds:.1f} s)",
                        flush=True,
                    )

            started = time.perf_counter()
            totals = battery(
                ctx, control, battery_cases, interval=args.interval,
                volatility=D(args.volatility), progress=progress,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
        engine.dispose()
    print(
        f"never naked: {len(battery_cases)} runs, seeds 1-{args.seeds}, TWAPs of "
        f"{args.durations} s, monitor interval {args.interval:g} s, "
        f"volatility {args.volatility}/s ({elapsed:.0f} s)\n"
    )
    print(table(totals, args.interval))
    notes = [n for f in totals.values() for n in f.notes]
    if notes:
        print("\nnotes:")
        for note in notes:
            print(f"  {note}")
    total = Figures()
    for figures in totals.values():
        total.add(figures)
    ok = (
        total.share <= D("0.001")
        and total.longest_run <= 1
        and total.oversold == 0
        and total.stale == 0
    )
    print(
        "\naims: unprotected share <= 0.1 %, longest naked <= one interval (+ one request), "
        f"oversold 0, stale refusals 0: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
