"""Restart and drift: make the database agree with the exchange, and flag what it never placed.

Runs when the monitor process starts (the cron scheduler enqueues every periodic job at
once) and every ``reconcile_interval``, under the monitor's lock:

1. a full monitor cycle converges what the database thinks is working: an algo that ended
   while nobody watched is confirmed in history, its fills recorded, its position's bracket
   placed once; brackets that filled close their positions;
2. every open listing of the account (algos on both markets, spot orders and order lists,
   USD-M orders and conditional orders) is compared with our orders: what we never placed is
   flagged once (Event ``foreign``); what we think is working but the exchange no longer
   lists, and the monitor does not own, is flagged once (Event ``drift``).

Orders in ``planned``/``sending``/``unknown`` belong to the execution layer, which reconciles
them by client id when it retries; they are left alone here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.execution.context import ExecContext
from app.healthcheck import record_monitor_cycle
from app.models import ALGO_KINDS, Event, Order, OrderStatus
from app.monitoring.algos import aware
from app.monitoring.exits import BRACKET_KINDS
from app.monitoring.service import CycleReport, Monitor, each_account, monitor_lock

log = logging.getLogger(__name__)

# How long reconcile waits for a running cycle to finish before giving up for this round.
LOCK_WAIT_SECONDS = 30.0
# A working algo the exchange shows nowhere for this long is drift, not read-after-write lag.
INVISIBLE_AFTER = timedelta(minutes=10)


@dataclass
class ReconcileReport:
    skipped: bool = False
    cycle: CycleReport = field(default_factory=CycleReport)
    foreign: list[str] = field(default_factory=list)  # newly flagged this run
    drift: list[str] = field(default_factory=list)  # newly flagged this run
    listing_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VenueThing:
    """Something open on the exchange: ``key`` names it for the flag, once."""

    key: str
    client_id: str
    what: str


def reconcile(
    ctx: ExecContext,
    *,
    now_ms: Callable[[], int] | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> ReconcileReport:
    flight = monitor_lock(ctx)
    deadline = ctx.clock.monotonic() + lock_wait
    while not flight.acquire():
        if ctx.clock.monotonic() >= deadline:
            log.info("reconcile: the monitor lock stayed busy; skipped this round")
            return ReconcileReport(skipped=True)
        ctx.clock.sleep(0.2)
    try:
        report = ReconcileReport()

        def one(account_ctx: ExecContext) -> CycleReport:
            cycle = Monitor(account_ctx, flight, now_ms=now_ms).cycle()
            Drift(account_ctx, report).run()
            return cycle

        report.cycle = CycleReport.merged(each_account(ctx, one))
    finally:
        flight.release()
    if ctx.redis is not None and not report.cycle.incomplete:
        record_monitor_cycle(ctx.redis, ctx.settings.queue_name)
    log.info("reconcile", extra={"reconcile": report.as_dict()})
    return report


class Drift:
    def __init__(self, ctx: ExecContext, report: ReconcileReport) -> None:
        self.ctx, self.client, self.report = ctx, ctx.client, report
        self.blind: set[str] = set()  # markets with a listing that failed this run

    def run(self) -> None:
        open_things = self._listings()
        self._flag_foreign(open_things)
        self._flag_missing({t.client_id for t in open_things})

    def _listings(self) -> list[VenueThing]:
        things: list[VenueThing] = []

        def collect(name: str, read: Callable[[], Iterable[VenueThing]]) -> None:
            try:
                things.extend(read())
            except Exception as exc:
                # An account without USD-M access answers -2015 here: not our drift.
                self.report.listing_errors += 1
                self.blind.add(name.split()[0])
                log.warning("reconcile: %s listing failed: %s", name, exc)

        client = self.client
        for market in ("spot", "usdm"):
            collect(
                f"{market} algos",
                lambda m=market: (  # type: ignore[misc]
                    VenueThing(
                        f"{m}_algo:{o.algoId}",
                        o.clientAlgoId,
                        f"{m} {o.algoType} {o.side} {o.totalQty} {o.symbol} (algoId {o.algoId})",
                    )
                    for o in client.algo_open_orders(m)
                ),
            )
        collect(
            "spot order lists",
            lambda: (
                VenueThing(
                    f"oco:{ol.orderListId}",
                    ol.listClientOrderId,
                    f"spot order list {ol.symbol} (orderListId {ol.orderListId})",
                )
                for ol in client.open_order_lists()
            ),
        )
        collect(
            "spot orders",
            lambda: (
                VenueThing(
                    f"spot_order:{o.orderId}",
                    o.clientOrderId,
                    f"spot {o.type} {o.side} {o.origQty} {o.symbol} (orderId {o.orderId})",
                )
                for o in client.open_orders()
                if o.orderListId == -1  # legs of a list are judged with their list
            ),
        )
        collect(
            "usdm orders",
            lambda: (
                VenueThing(
                    f"usdm_order:{o.orderId}",
                    o.clientOrderId,
                    f"usdm {o.type} {o.side} {o.origQty} {o.symbol} (orderId {o.orderId})",
                )
                for o in client.open_futures_orders()
            ),
        )
        collect(
            "usdm conditional orders",
            lambda: (
                VenueThing(
                    f"conditional:{c.algoId}",
                    c.clientAlgoId,
                    f"usdm {c.orderType} {c.side} {c.symbol} (algoId {c.algoId})",
                )
                for c in client.open_conditional_orders()
            ),
        )
        return things

    def _flag_foreign(self, things: list[VenueThing]) -> None:
        if not things:
            return
        with self.ctx.sessions() as session:
            ours = set(
                session.scalars(
                    select(Order.client_id).where(
                        Order.client_id.in_([t.client_id for t in things])
                    )
                )
            )
            flagged = _flagged(session, "foreign")
            for thing in things:
                if thing.client_id in ours or thing.key in flagged:
                    continue
                session.add(
                    Event(
                        kind="foreign",
                        message=f"open on the exchange, never placed by Pacekeeper: {thing.what}",
                        data={"key": thing.key, "client_id": thing.client_id},
                    )
                )
                self.report.foreign.append(thing.key)
            session.commit()
        for key in self.report.foreign:
            log.warning("reconcile: foreign order on the exchange: %s", key)

    def _flag_missing(self, open_ids: set[str]) -> None:
        """Working rows the exchange lists nowhere, among those nobody else settles (not on a
        market whose listings failed: an incomplete picture would flag the wrong orders)."""
        cutoff = self.ctx.clock.now() - INVISIBLE_AFTER
        with self.ctx.sessions() as session:
            rows = session.scalars(
                select(Order).where(
                    Order.account == self.ctx.account, Order.status == OrderStatus.WORKING
                )
            ).all()
            flagged = _flagged(session, "drift")
            for order in rows:
                if order.market in self.blind:
                    continue
                if order.client_id in open_ids or f"order:{order.id}" in flagged:
                    continue
                if order.kind in BRACKET_KINDS and order.position_id is not None:
                    continue  # the bracket poll settles these
                if order.kind in ALGO_KINDS and (aware(order.created_at) or cutoff) > cutoff:
                    continue  # the monitor settles these once history shows them
                session.add(
                    Event(
                        signal_id=order.signal_id,
                        order_id=order.id,
                        kind="drift",
                        message=f"{order.kind} {order.client_id} is working in the database "
                        "but not open on the exchange",
                        data={"key": f"order:{order.id}"},
                    )
                )
                self.report.drift.append(f"order:{order.id}")
            session.commit()


def _flagged(session: Any, kind: str) -> set[str]:
    return {
        str((data or {}).get("key"))
        for data in session.scalars(select(Event.data).where(Event.kind == kind))
    }
