"""A trading desk for monitor tests: rows written as the execution layer leaves them (a signal
``working``, its entry algo ``working``, a position with a pending bracket), the algo placed
on the paper exchange over real HTTP, the paper's manual clock, faults and ledger."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from app.exchange.ids import client_algo_id
from app.execution.context import ExecContext
from app.execution.service import Outcome, process_signal
from app.models import (
    Event,
    Fill,
    Order,
    OrderStatus,
    Position,
    Signal,
    SignalStatus,
    new_id,
    utcnow,
)
from app.monitoring.algos import from_ms
from app.monitoring.reconcile import ReconcileReport, reconcile
from app.monitoring.service import CycleReport, run_cycle
from app.signals.service import prepare, record
from paper.clock import ManualClock

D = Decimal


@dataclass
class Entry:
    signal_id: str
    order_id: int
    client_id: str
    position_id: int | None


class Desk:
    def __init__(self, ctx: ExecContext, clock: ManualClock, control: httpx.Client) -> None:
        self.ctx, self.clock, self.control = ctx, clock, control

    # ---- time and cycles -------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def cycle(self, ctx: ExecContext | None = None) -> CycleReport:
        return run_cycle(ctx or self.ctx, now_ms=self.clock.now_ms)

    def reconcile(self) -> ReconcileReport:
        return reconcile(self.ctx, now_ms=self.clock.now_ms, lock_wait=5)

    # ---- signals through the execution layer itself ---------------------------------

    def submit(self, **fields: Any) -> str:
        """Store a signal as the receiver would (status ``received``); returns its id."""
        raw = {"action": "entry", "symbol": "BTCUSDT", "side": "buy", "id": new_id(), **fields}
        settings = self.ctx.settings
        prepared = prepare(
            {k: v for k, v in raw.items() if v is not None},
            now=utcnow(),
            dedupe_window=60,
            twap_min_duration=settings.twap_min_duration,
            twap_max_duration=settings.twap_max_duration,
        )
        return record(self.ctx.sessions.kw["bind"], prepared, now=utcnow()).signal_id

    def run(self, signal_id: str) -> Outcome:
        """Process a stored signal as the worker would."""
        return process_signal(self.ctx, signal_id)

    # ---- placing as the execution layer does -----------------------------------------

    def entry(
        self,
        *,
        kind: str = "twap",
        market: str = "spot",
        symbol: str = "BTCUSDT",
        side: str = "BUY",
        quantity: str = "0.3",
        duration: int | None = 60,
        limit_price: str | None = None,
        urgency: str = "HIGH",
        pace: dict[str, Any] | None = None,
        expires_in: float | None = None,
        bracket: dict[str, Any] | None = None,
        place: bool = True,
    ) -> Entry:
        signal_id = new_id()
        client_id = client_algo_id(signal_id, "entry")
        now = from_ms(self.clock.now_ms())
        expires_at = now + timedelta(seconds=expires_in) if expires_in is not None else None
        payload: dict[str, Any] = {"action": "entry", "symbol": symbol, "market": market}
        if pace:
            payload["pace"] = pace
        with self.ctx.sessions() as session:
            signal = Signal(
                id=signal_id,
                idempotency_key=f"test:{signal_id}",
                body_digest=hashlib.sha256(signal_id.encode()).hexdigest(),
                action="entry",
                market=market,
                symbol=symbol,
                side=side.lower(),
                payload=payload,
                status=SignalStatus.WORKING,
                expires_at=expires_at,
            )
            session.add(signal)
            session.flush()
            position_id = None
            if bracket is not None:
                position = Position(
                    market=market,
                    symbol=symbol,
                    side=side,
                    pending_bracket=bracket,
                    opened_by=signal_id,
                )
                session.add(position)
                session.flush()
                position_id = position.id
            order = Order(
                signal_id=signal_id,
                position_id=position_id,
                leg="entry",
                kind=kind,
                market=market,
                symbol=symbol,
                side=side,
                client_id=client_id,
                status=OrderStatus.WORKING,
                quantity=D(quantity),
                duration=duration if kind == "twap" else None,
                urgency=urgency if kind == "vp" else None,
                limit_price=D(limit_price) if limit_price else None,
            )
            session.add(order)
            session.commit()
            order_id = order.id
        if place:
            self.place(
                kind, market, symbol, side, quantity, duration, limit_price, urgency, client_id
            )
        return Entry(signal_id, order_id, client_id, position_id)

    def place(
        self,
        kind: str,
        market: str,
        symbol: str,
        side: str,
        quantity: str,
        duration: int | None,
        limit_price: str | None,
        urgency: str,
        client_id: str,
    ) -> None:
        client = self.ctx.client
        limit = D(limit_price) if limit_price else None
        if kind == "vp":
            client.new_futures_vp(
                symbol=symbol, side=side, quantity=D(quantity), urgency=urgency,
                client_algo_id=client_id, limit_price=limit,
            )  # fmt: skip
        elif market == "usdm":
            client.new_futures_twap(
                symbol=symbol, side=side, quantity=D(quantity), duration=duration or 60,
                client_algo_id=client_id, limit_price=limit,
            )  # fmt: skip
        else:
            client.new_spot_twap(
                symbol=symbol, side=side, quantity=D(quantity), duration=duration or 60,
                client_algo_id=client_id, limit_price=limit,
            )  # fmt: skip

    # ---- reading back ------------------------------------------------------------------

    def order(self, order_id: int) -> Order:
        with self.ctx.sessions() as session:
            order = session.get(Order, order_id)
            assert order is not None
            return order

    def signal(self, signal_id: str) -> Signal:
        with self.ctx.sessions() as session:
            signal = session.get(Signal, signal_id)
            assert signal is not None
            return signal

    def position(self, position_id: int | None) -> Position:
        with self.ctx.sessions() as session:
            position = session.get(Position, position_id)
            assert position is not None
            return position

    def fills(self, order_id: int) -> list[Fill]:
        with self.ctx.sessions() as session:
            return list(session.scalars(select(Fill).where(Fill.order_id == order_id)))

    def fills_qty(self, order_id: int) -> Decimal:
        return sum((f.qty for f in self.fills(order_id)), D(0))

    def events(self, kind: str | None = None, order_id: int | None = None) -> list[Event]:
        with self.ctx.sessions() as session:
            query = select(Event).order_by(Event.id)
            if kind is not None:
                query = query.where(Event.kind == kind)
            if order_id is not None:
                query = query.where(Event.order_id == order_id)
            return list(session.scalars(query))

    def positions(self) -> list[Position]:
        with self.ctx.sessions() as session:
            return list(session.scalars(select(Position).order_by(Position.id)))

    def orders(self, **where: Any) -> list[Order]:
        with self.ctx.sessions() as session:
            query = select(Order).order_by(Order.id)
            for name, value in where.items():
                query = query.where(getattr(Order, name) == value)
            return list(session.scalars(query))

    # ---- the paper exchange ------------------------------------------------------------

    def paper(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.control.request(method, path, json=body, params=params or None)
        response.raise_for_status()
        return response.json()

    def fault(self, **spec: Any) -> int:
        rule: dict[str, Any] = self.paper("POST", "/faults", spec)
        return int(rule["id"])

    def applied(self, rule_id: int) -> int:
        """How many requests a fault rule has matched: a request counter on the exchange."""
        for rule in self.paper("GET", "/faults")["faults"]:
            if rule["id"] == rule_id:
                return int(rule["applied"])
        raise AssertionError(f"no fault rule {rule_id}")

    def count(self, method: str, path: str) -> int:
        """Start counting requests to ``method path`` (a zero-delay latency rule)."""
        return self.fault(action="latency", path=path, method=method, delay_ms=0)

    def fill_ratio(self, client_id: str, ratio: str) -> None:
        self.paper("POST", "/algo-fill", {"clientAlgoId": client_id, "ratio": ratio})

    def set_price(self, symbol: str, price: str) -> None:
        self.paper("POST", "/price", {"symbol": symbol, "price": price})

    def ledger(self, **query: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.paper("GET", "/ledger", **query)["entries"]
        return entries
