"""The monitor cycle: keep every working algo on pace, cancel laggards, protect what filled.

One cycle, under the single-flight lock (``lock.py``):

1. read the algos the database thinks are working (one query);
2. ask the exchange for its time and, per market with working algos, ``openOrders`` (one
   call each); algos missing from it are looked up in ``historicalOrders`` (one paged scan
   per market) — only what history shows ended is ever called terminal;
3. read ``subOrders`` (all pages) of every algo, working or ended (a small thread pool
   shares the client): pace is judged on the children, never on the algo's
   ``executedQty``, which a working spot algo does not show until it ends (Binance's FAQ);
   record the child fills of the working ones as the answers arrive;
4. judge the pace of each still-working algo with exchange time (``pace.judge`` on its
   children, with its signal's overrides) and publish the verdicts for the other readers
   (``verdicts.py``); for those behind schedule or whose signal expired, record the
   decision and its numbers, cancel (an "already done" answer is fine), and read their final
   state from history (one scan per market) and their children;
5. end every algo confirmed terminal (fills, status, signal: a compare-and-set, so once).
   What a monitor's or an expiry's cancel (or the algo's own end) left unexecuted is handled
   by the signal's remainder policy (``remainders.py``); an exit or close takes its fills
   from its position (closed once only dust is left);
6. take up remainders not done yet (a limit remainder resting, a step a crash interrupted);
   poll open brackets (``exits.py``); follow resting orders (``app/execution/resting.py``);
   then the protection pass (``protection.py``): every open position's bracket placed,
   resized as its entry fills, restored when it was lost, or the position stopped out;
7. record the heartbeat, unless an openOrders listing failed or every working algo's
   handling failed this cycle (the heartbeat means the monitor is doing its job).

Every action on the exchange first renews the lock; a cycle that lost it stops acting. One
algo's error, or a failure of the resting-order pass, is recorded as an Event
(``monitor_error``) and the rest goes on. Anything else fails this one job: the cron
process enqueues the next cycle regardless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.exchange.errors import AlreadyDone
from app.exchange.filters import Market
from app.exchange.models import AlgoOrder, SubOrder
from app.execution.context import ExecContext
from app.execution.journal import event
from app.execution.resting import follow_resting_orders
from app.healthcheck import record_monitor_cycle
from app.metrics import MetricsRecorder
from app.models import Order, OrderKind, OrderStatus
from app.monitoring import algos as A
from app.monitoring import remainders, verdicts
from app.monitoring.exits import watch_brackets
from app.monitoring.lock import MONITOR_LOCK_KEY, LockLost, SingleFlight
from app.monitoring.pace import Child, PacePolicy, judge, progress_of
from app.monitoring.protection import protect_positions
from app.signals.schemas import Remainder

log = logging.getLogger(__name__)

# History is searched from a little before the earliest algo it must find.
HISTORY_MARGIN_MS = 60_000
# Algos whose fills one transaction records (SQLite writers queue behind it).
RECORD_BATCH = 50
R = TypeVar("R")


@dataclass
class CycleReport:
    """What one cycle did, for logs and metrics."""

    skipped: bool = False
    # No heartbeat for this cycle: an openOrders listing failed, or every algo failed.
    incomplete: bool = False
    duration_s: float = 0.0
    algos_checked: int = 0
    sub_order_reads: int = 0
    fills_recorded: int = 0
    cancels: int = 0
    finished: int = 0
    brackets_placed: int = 0  # placed, resized or restored
    stop_outs: int = 0
    brackets_checked: int = 0
    exits: int = 0
    remainders: int = 0  # remainder steps taken (order placed, followed, settled)
    resting_orders_changed: int = 0
    errors: int = 0
    algos_failed: int = 0  # working algos with an error recorded this cycle
    weight: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merged(cls, reports: list[CycleReport]) -> CycleReport:
        """One report for the accounts' cycles, which ran side by side."""
        out = cls()
        for report in reports:
            for name, value in asdict(report).items():
                if name == "weight":
                    for kind, used in value.items():
                        out.weight[kind] = out.weight.get(kind, 0) + used
                elif name in ("skipped", "incomplete"):
                    setattr(out, name, getattr(out, name) or value)
                elif name == "duration_s":
                    out.duration_s = max(out.duration_s, value)
                else:
                    setattr(out, name, getattr(out, name) + value)
        return out


def each_account(ctx: ExecContext, work: Callable[[ExecContext], R]) -> list[R]:
    """``work`` once per configured account, on that account's context, side by side: an
    account whose exchange answers slowly (or not at all) does not hold up the others."""
    names = list(ctx.clients) or [ctx.account]
    if len(names) == 1:
        return [work(ctx.for_account(names[0]))]
    with ThreadPoolExecutor(len(names), thread_name_prefix="pacekeeper-account") as pool:
        return list(pool.map(lambda name: work(ctx.for_account(name)), names))


def lock_ttl(monitor_interval: float) -> float:
    """A few intervals: a live cycle keeps its lock alive however long it runs, and one
    whose process died frees it within this time (``app.monitoring.lock``)."""
    return max(10.0, monitor_interval * 3)


def monitor_lock(ctx: ExecContext) -> SingleFlight:
    """The lock every cycle and reconciliation of this deployment (its queue) shares."""
    key = f"{MONITOR_LOCK_KEY}:{ctx.settings.queue_name}"
    return SingleFlight(ctx.redis, key, lock_ttl(ctx.settings.monitor_interval))


def run_cycle(ctx: ExecContext, *, now_ms: Callable[[], int] | None = None) -> CycleReport:
    """One monitor cycle, or a skipped one when another cycle holds the lock."""
    flight = monitor_lock(ctx)
    if not flight.acquire():
        log.info("monitor: another cycle is running; skipped")
        return CycleReport(skipped=True)
    try:
        report = CycleReport.merged(
            each_account(ctx, lambda c: Monitor(c, flight, now_ms=now_ms).cycle())
        )
    finally:
        flight.release()
    if ctx.redis is not None and not report.incomplete:
        record_monitor_cycle(ctx.redis, ctx.settings.queue_name)
        MetricsRecorder.for_settings(ctx.redis, ctx.settings).monitor_cycle(report.duration_s)
    log.info("monitor cycle", extra={"cycle": report.as_dict()})
    return report


@dataclass(eq=False)
class _Seen:
    """One algo after this cycle's reads: its exchange row and, when read, its children."""

    algo: A.WatchedAlgo
    row: AlgoOrder  # from openOrders, or from historicalOrders when ``terminal``
    terminal: bool = False
    subs: list[SubOrder] | None = None


class Monitor:
    """One cycle's work; ``run_cycle`` and ``reconcile`` hold the lock around it."""

    def __init__(
        self,
        ctx: ExecContext,
        flight: SingleFlight,
        *,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.flight = flight
        self.policy = PacePolicy.from_settings(ctx.settings)
        self._now_ms = now_ms or (lambda: self.client.server_time(Market.SPOT))
        self.report = CycleReport()
        self._counts = threading.Lock()
        self._failed: set[int] = set()  # order ids of the algos with an error this cycle
        self._verdicts: dict[int, verdicts.Published] = {}  # this cycle's, by order id
        self._ended: list[int] = []  # order ids of the algos ended this cycle

    def count(self, name: str, n: int = 1) -> None:
        with self._counts:
            setattr(self.report, name, getattr(self.report, name) + n)

    # ---- the cycle -----------------------------------------------------------------------

    def cycle(self) -> CycleReport:
        started = time.perf_counter()
        spent = dict(self.client.governor.spent)
        try:
            self._algos()
            self._remainders()
            result = watch_brackets(self.ctx, self.flight)
            self.report.brackets_checked = result.checked
            self.count("exits", result.exits)
            self.count("errors", result.errors)
            self._follow_resting()
            self._protect_positions()
        except LockLost:
            log.warning("monitor: lock lost mid-cycle; stopped acting")
            self.count("errors")
        self.report.duration_s = round(time.perf_counter() - started, 3)
        self.report.weight = {
            kind: used - spent.get(kind, 0)
            for kind, used in self.client.governor.spent.items()
            if used != spent.get(kind, 0)
        }
        return self.report

    def _follow_resting(self) -> None:
        """Resting LIMIT orders: fills recorded, the position bracketed, the signal closed.
        Its failure (a database error, an unexpected answer) is recorded and the cycle, and
        its heartbeat, go on: the next cycle tries again."""
        self.flight.ensure()
        try:
            self.count("resting_orders_changed", follow_resting_orders(self.ctx))
        except LockLost:
            raise
        except Exception as exc:
            self._error(None, f"following resting orders failed: {type(exc).__name__}: {exc}")

    def _algos(self) -> None:
        with self.ctx.sessions() as session:
            watched = A.load_working(session, self.ctx.account)
        self.report.algos_checked = len(watched)
        if not watched:
            return
        try:
            self._watch(watched)
        finally:
            self.report.algos_failed = len(self._failed)
            if self._failed >= {w.order_id for w in watched}:
                # Nothing was judged or ended this cycle: no heartbeat.
                self.report.incomplete = True

    def _watch(self, watched: list[A.WatchedAlgo]) -> None:
        now = A.from_ms(self._now_ms())
        seen = self._observe(watched)
        self._read_and_record(seen)
        # An algo whose children could not be read is left for the next cycle.
        seen = [s for s in seen if s.subs is not None]
        working = [s for s in seen if not s.terminal]
        try:
            cancelled = self._cancel_laggards(working, now)
            ended = [s for s in seen if s.terminal] + self._confirm(cancelled)
            self._each(self._finish, ended, parallel=False)
        finally:
            self._publish()

    def _publish(self) -> None:
        """This cycle's verdicts, for the API, the dashboard and ``pacekeeper status``."""
        if self.ctx.redis is None:
            return
        try:
            verdicts.publish(
                self.ctx.redis, self.ctx.settings.queue_name, self._verdicts,
                ended=self._ended, expire=verdicts.ttl(self.ctx.settings.monitor_interval),
            )  # fmt: skip
        except Exception as exc:
            log.warning("monitor: pace verdicts not published: %s", exc)

    def _observe(self, watched: list[A.WatchedAlgo]) -> list[_Seen]:
        """openOrders per market, and history for the algos missing from it."""
        seen: list[_Seen] = []
        for market in sorted({w.market for w in watched}):
            mine = [w for w in watched if w.market == market]
            try:
                live = {o.clientAlgoId: o for o in self.client.algo_open_orders(market)}
            except Exception as exc:
                self.report.incomplete = True
                self._failed.update(w.order_id for w in mine)
                self._error(None, f"{market} openOrders failed: {type(exc).__name__}: {exc}")
                continue
            missing = [w for w in mine if w.client_id not in live]
            ended = self._history(market, missing) if missing else {}
            for algo in mine:
                if algo.client_id in live:
                    seen.append(_Seen(algo, live[algo.client_id]))
                elif algo.client_id in ended:
                    seen.append(_Seen(algo, ended[algo.client_id], terminal=True))
                else:
                    # Neither open nor in history yet (read-after-write lag): next cycle.
                    log.info("monitor: algo %s not visible yet", algo.client_id)
        return seen

    def _history(self, market: Market, missing: list[A.WatchedAlgo]) -> dict[str, AlgoOrder]:
        """The ended algos among ``missing``, from one paged scan of historicalOrders."""
        since = min(A.to_ms(w.since) for w in missing) - HISTORY_MARGIN_MS
        wanted = {w.client_id for w in missing}
        found: dict[str, AlgoOrder] = {}
        try:
            for row in self.client.iter_algo_historical_orders(market, start_time=since):
                if row.clientAlgoId in wanted and not row.is_working:
                    found[row.clientAlgoId] = row
                    if len(found) == len(wanted):
                        break
        except Exception as exc:
            self._failed.update(w.order_id for w in missing)
            self._error(None, f"{market} historicalOrders failed: {type(exc).__name__}: {exc}")
        return found

    def _read_children(self, item: _Seen) -> None:
        item.subs = list(self.client.iter_algo_sub_orders(item.algo.market, item.row.algoId))
        self.count("sub_order_reads")

    def _read_and_record(self, seen: list[_Seen]) -> None:
        """subOrders of every algo seen, read in the pool; as the answers arrive, the child
        fills of the still-working ones are recorded here in batches of ``RECORD_BATCH``
        (one transaction each), so database work overlaps the reads and no write lock is
        held for long."""
        if not seen:
            return

        def read(item: _Seen) -> str | None:
            try:
                self._read_children(item)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        failed: list[tuple[A.WatchedAlgo, str]] = []
        workers = max(1, min(self.ctx.settings.monitor_concurrency, len(seen)))
        with ThreadPoolExecutor(workers) as pool, self.ctx.sessions() as session:
            futures = {pool.submit(read, item): item for item in seen}
            ids = [i.algo.order_id for i in seen if not i.terminal]
            orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(ids)))}
            known = A.recorded_fill_ids(session, ids)
            session.commit()  # nothing held while the first answers arrive
            batch: list[tuple[_Seen, Order]] = []
            for future in as_completed(futures):
                item, why = futures[future], future.result()
                order = orders.get(item.algo.order_id)
                if why is not None:
                    failed.append((item.algo, why))
                elif not item.terminal and order is not None:
                    batch.append((item, order))
                if len(batch) >= RECORD_BATCH:
                    failed += self._record(session, batch, known)
                    batch = []
            failed += self._record(session, batch, known)
        for algo, why in failed:
            self._error(algo, f"reading or recording fills failed: {why}")

    def _record(
        self, session: Session, batch: list[tuple[_Seen, Order]], known: dict[int, set[str]]
    ) -> list[tuple[A.WatchedAlgo, str]]:
        """Child fills and sums of working algos in one transaction; if that fails, again
        with a savepoint per algo, so only the failing ones are left for the next cycle."""
        now = self.ctx.clock.now()

        def apply(item: _Seen, order: Order) -> int | None:
            if order.status != OrderStatus.WORKING or item.subs is None:
                return None
            new = A.apply_children(session, order, item.subs, known[order.id], now=now)
            A.mirror(order, item.row)
            return new

        failed: list[tuple[A.WatchedAlgo, str]] = []
        try:
            news = [apply(item, order) for item, order in batch]
            session.commit()
        except Exception:
            session.rollback()
            news = []
            for item, order in batch:
                try:
                    with session.begin_nested():
                        news.append(apply(item, order))
                except Exception as exc:
                    failed.append((item.algo, f"{type(exc).__name__}: {exc}"))
                    news.append(None)
            session.commit()
        for new in news:
            if new is not None:
                self.count("fills_recorded", new)
        return failed

    # ---- pace and cancels ----------------------------------------------------------------

    def _judge(self, item: _Seen, now: datetime) -> dict[str, Any] | None:
        """The decision to cancel (with its numbers) when the algo is behind or its signal
        expired, else None; the verdict is kept for publishing. No I/O."""
        algo, row = item.algo, item.row
        progress = progress_of(
            Child(A.from_ms(s.bookTime), s.origQty or s.executedQty, s.executedQty)
            for s in item.subs or ()
        )
        verdict = judge(
            total=row.totalQty,
            progress=progress,
            start=A.from_ms(row.bookTime),
            duration=algo.duration if algo.kind == OrderKind.TWAP else None,
            now=now,
            policy=self.policy.with_overrides(algo.pace),
        )
        self._verdicts[algo.order_id] = verdicts.Published(verdict, now)
        if algo.expires_at is not None and now >= algo.expires_at:
            cause, reason = "expiry", f"signal expired at {algo.expires_at.isoformat()}"
        elif verdict.behind:
            cause, reason = "pace", verdict.reason
        else:
            return None
        return {
            "cause": cause,
            "reason": reason,
            "state": verdict.state.value,
            "fill_fraction": str(verdict.fill_fraction),
            "schedule": None if verdict.schedule is None else str(verdict.schedule),
            "required": None if verdict.required is None else str(verdict.required),
            "elapsed": int(verdict.elapsed),
            "executed_qty": A.qty(progress.executed),
            "total": A.qty(row.totalQty),
        }

    def _cancel_laggards(self, working: list[_Seen], now: datetime) -> list[_Seen]:
        """Judge every working algo; record the decisions, then send the cancels."""
        decisions = self._each(lambda item: self._judge(item, now), working, parallel=False)
        decided = {id(i): d for i, d in zip(working, decisions, strict=True) if d is not None}
        if not decided:
            return []
        self.flight.ensure()
        # Every decision is on record before its cancel is sent: a crash in between still
        # leaves the reason for the cycle that ends the algo.
        with self.ctx.sessions() as session:
            ids = [i.algo.order_id for i in working if id(i) in decided]
            orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(ids)))}
            to_cancel = []
            for item in working:
                decision, order = decided.get(id(item)), orders.get(item.algo.order_id)
                if decision is None or order is None or order.status != OrderStatus.WORKING:
                    continue
                order.extra = {**(order.extra or {}), "monitor_cancel": decision}
                event(
                    session,
                    decision["cause"],
                    f"cancelling: {decision['reason']}",
                    signal_id=item.algo.signal_id,
                    order_id=item.algo.order_id,
                    **decision,
                )
                to_cancel.append(item)
            session.commit()
        return [c for c in self._each(self._cancel, to_cancel) if c is not None]

    def _cancel(self, item: _Seen) -> _Seen:
        self.flight.ensure()
        try:
            self.client.cancel_algo(item.algo.market, item.row.algoId)
        except AlreadyDone:
            log.info("monitor: algo %s had already ended when cancelled", item.algo.client_id)
        self.count("cancels")
        return item

    def _confirm(self, cancelled: list[_Seen]) -> list[_Seen]:
        """The final state of the algos just cancelled (one history scan per market), with
        their children; those history does not show yet are ended by a later cycle."""
        confirmed: list[_Seen] = []
        for market in sorted({c.algo.market for c in cancelled}):
            mine = [c.algo for c in cancelled if c.algo.market == market]
            finals = self._history(market, mine)
            confirmed += [
                _Seen(a, finals[a.client_id], terminal=True) for a in mine if a.client_id in finals
            ]
        self._each(self._read_children, confirmed)
        return [c for c in confirmed if c.subs is not None]

    # ---- ends and brackets ---------------------------------------------------------------

    def _finish(self, item: _Seen) -> None:
        algo, row, subs = item.algo, item.row, item.subs
        if subs is None or not A.settled(row, subs):
            log.info("monitor: children of %s not settled yet; next cycle", algo.client_id)
            return
        closing = A.closing(algo.leg) and algo.position_id is not None
        acting = algo.remainder is not Remainder.CANCEL
        # What cannot be traded, of a position after a close or of an algo's rest: a step.
        step = self._step_size(algo) if closing or acting else A.ZERO
        dust = step if closing else A.ZERO
        with self.ctx.sessions() as session:
            if not A.finish(session, algo.order_id, row, subs, now=self.ctx.clock.now(),
                            dust=dust, remainder=algo.remainder, step=step):  # fmt: skip
                return  # another monitor ended it
            session.commit()
        self.count("finished")
        with self._counts:
            self._ended.append(algo.order_id)
        if acting:
            # What it left goes out by the signal's policy; the protection pass at the end of
            # this cycle brackets what the position then holds (or closes an empty one).
            self._carry_out(algo.order_id)

    def _remainders(self) -> None:
        """Remainders not done yet (a limit resting, a step a crash interrupted)."""
        self.flight.ensure()
        try:
            pending = remainders.pending_algos(self.ctx)
        except Exception as exc:
            self._error(None, f"reading remainders failed: {type(exc).__name__}: {exc}")
            return
        for order_id in pending:
            self._carry_out(order_id)

    def _carry_out(self, order_id: int) -> None:
        self.flight.ensure()
        try:
            now = A.from_ms(self._now_ms())
            if remainders.carry_out(self.ctx, order_id, now=now):
                self.count("remainders")
        except LockLost:
            raise
        except Exception as exc:
            self._error(None, f"remainder of order {order_id}: {type(exc).__name__}: {exc}")

    def _step_size(self, algo: A.WatchedAlgo) -> Decimal:
        rules = self.client.symbol_rules(algo.symbol, algo.market)
        return rules.lot.step_size if rules.lot is not None else A.ZERO

    def _protect_positions(self) -> None:
        """Every open position against its bracket (``protection.py``)."""
        self.flight.ensure()
        result = protect_positions(
            self.ctx, self.flight, on_error=lambda message: self._error(None, message)
        )
        self.count("brackets_placed", result.placed)
        self.count("stop_outs", result.stop_outs)

    # ---- plumbing ------------------------------------------------------------------------

    def _each(
        self, fn: Callable[[_Seen], R], items: list[_Seen], *, parallel: bool = True
    ) -> list[R | None]:
        """``fn`` on every item, in the pool when there are several; an item's error is
        recorded for its algo and the others go on."""

        def safe(item: _Seen) -> R | None:
            try:
                return fn(item)
            except LockLost:
                raise
            except Exception as exc:
                self._error(item.algo, f"{type(exc).__name__}: {exc}")
                return None

        workers = self.ctx.settings.monitor_concurrency
        if not parallel or len(items) <= 1 or workers <= 1:
            return [safe(item) for item in items]
        with ThreadPoolExecutor(min(workers, len(items))) as pool:
            return list(pool.map(safe, items))

    def _error(self, algo: A.WatchedAlgo | None, message: str) -> None:
        self.count("errors")
        if algo is not None:
            with self._counts:
                self._failed.add(algo.order_id)
        log.warning("monitor: %s%s", f"algo {algo.client_id}: " if algo else "", message)
        try:
            with self.ctx.sessions() as session:
                event(
                    session,
                    "monitor_error",
                    message[:2000],
                    signal_id=algo.signal_id if algo else None,
                    order_id=algo.order_id if algo else None,
                )
                session.commit()
        except Exception:
            log.exception("monitor: could not record an error")
