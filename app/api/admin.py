"""The admin API under ``/api``: read signals and orders, watch algos, cancel, halt, resume.

Every route needs ``Authorization: Bearer <PACEKEEPER_ADMIN_TOKEN>``. Lists are newest first
and paged with ``limit`` and an opaque ``cursor`` (the ``next_cursor`` of the previous page).

Cancelling an algo is ``app.monitoring.cancels.cancel_algo``, in the same two steps as the
monitor's own cancels: the decision is written, then the exchange is asked; the monitor's next
cycle records what the algo did. An algo that already ended answers ``already_done``; an
exchange failure answers 502 and can simply be retried.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BeforeValidator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from app import controls
from app.accounts import DEFAULT_ACCOUNT, configured_accounts
from app.api.deps import Admin, ReadSessionDep, RedisDep, SessionDep, SettingsDep
from app.api.schemas import (
    MAX_ROW_ID,
    NO_NUL,
    AlgoList,
    AlgoOut,
    CancelIn,
    CancelOut,
    EventOut,
    FillPoint,
    HaltIn,
    HaltOut,
    OrderOut,
    OrderPage,
    OrderWithFills,
    PaceOut,
    PolicyOut,
    PositionOut,
    PositionPage,
    QualityOut,
    SignalDetail,
    SignalOut,
    SignalPage,
)
from app.config import Settings
from app.errors import AppError, Conflict, NotFound, responses
from app.exchange import BinanceClient
from app.exchange.filters import Market
from app.execution.positions import ENTRY_LEG
from app.execution.protection import bracket_view, held
from app.execution.quality import Quality, measure, measure_each
from app.metrics import exchange_observer
from app.models import Event, Order, OrderStatus, Position, Signal, SignalStatus, utcnow
from app.monitoring import marks, verdicts
from app.monitoring.cancels import Cancelled, cancel_algo
from app.monitoring.queries import (
    MONITOR,
    AlgoPace,
    fill_paths,
    recent_algos,
    working_algos,
    working_ids,
)
from app.signals.schemas import Action

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api", tags=["admin"], dependencies=[Admin], responses=responses(401, 422)
)

MAX_PAGE = 200
SIGNAL_CURSOR = r"^[0-9a-f]{32}$"
ADMIN = "admin-api"
# The longest an admin request waits for the rate-limit governor before answering 502.
CANCEL_MAX_WAIT = 5.0


def _iso_only(value: object) -> object:
    # pydantic reads "0.5" as a Unix time; the schema promises an ISO 8601 date-time.
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Time = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_in_utc)]
# Free-text filters: bounded, and never a NUL (which PostgreSQL refuses with an error).
Text = Annotated[str, Query(min_length=1, max_length=128, pattern=NO_NUL)]
SymbolFilter = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._:/-]+$")]
KindFilter = Annotated[str, Query(min_length=1, max_length=24, pattern=r"^[a-z_]+$")]
SignalId = Annotated[str, Query(pattern=SIGNAL_CURSOR)]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


# ---- reading -------------------------------------------------------------------------------


@router.get("/signals", response_model=SignalPage, summary="Signals, newest first")
def list_signals(
    session: ReadSessionDep,
    status: Annotated[list[SignalStatus] | None, Query()] = None,
    symbol: SymbolFilter | None = None,
    strategy: Text | None = None,
    action: Action | None = None,
    market: Market | None = None,
    account: Text | None = None,
    since: Annotated[Time | None, Query(description="received at or after")] = None,
    until: Annotated[Time | None, Query(description="received before")] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(pattern=SIGNAL_CURSOR)] = None,
) -> dict[str, Any]:
    query = select(Signal).order_by(Signal.id.desc()).limit(limit + 1)
    if status:
        query = query.where(Signal.status.in_([s.value for s in status]))
    for column, value in (
        (Signal.symbol, symbol and symbol.upper()),
        (Signal.strategy, strategy),
        (Signal.action, action),
        (Signal.market, market),
        (Signal.account, account),
    ):
        if value:
            query = query.where(column == value)
    if since is not None:
        query = query.where(Signal.received_at >= since)
    if until is not None:
        query = query.where(Signal.received_at < until)
    if cursor is not None:
        query = query.where(Signal.id < cursor)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": rows[-1].id if more else None}


@router.get(
    "/signals/{signal_id}",
    response_model=SignalDetail,
    summary="One signal, in full",
    responses=responses(404),
)
def get_signal(
    signal_id: Annotated[str, Path(pattern=SIGNAL_CURSOR)], session: ReadSessionDep
) -> dict[str, Any]:
    signal = session.get(Signal, signal_id)
    if signal is None:
        raise NotFound(f"no signal {signal_id}")
    orders = list(
        session.scalars(
            select(Order)
            .where(Order.signal_id == signal_id)
            .options(selectinload(Order.fills))
            .order_by(Order.id)
        )
    )
    order_ids = [order.id for order in orders]
    events = session.scalars(
        select(Event)
        .where(or_(Event.signal_id == signal_id, Event.order_id.in_(order_ids)))
        .order_by(Event.id)
    )
    return {
        **SignalOut.model_validate(signal).model_dump(),
        "source_ip": signal.source_ip,
        "payload": signal.payload,
        "sizing": next(
            (o.extra.get("sizing") for o in orders if o.leg == ENTRY_LEG and o.extra), None
        ),
        "orders": [OrderWithFills.model_validate(order) for order in orders],
        "events": [EventOut.model_validate(event) for event in events],
        "quality": (quality.as_json() if (quality := measure(session, signal_id)) else None),
    }


@router.get("/orders", response_model=OrderPage, summary="Orders, newest first")
def list_orders(
    session: ReadSessionDep,
    status: Annotated[list[OrderStatus] | None, Query()] = None,
    kind: KindFilter | None = None,
    market: Market | None = None,
    symbol: SymbolFilter | None = None,
    signal_id: SignalId | None = None,
    account: Text | None = None,
    since: Annotated[Time | None, Query(description="created at or after")] = None,
    until: Annotated[Time | None, Query(description="created before")] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict[str, Any]:
    query = select(Order).order_by(Order.id.desc()).limit(limit + 1)
    if status:
        query = query.where(Order.status.in_([s.value for s in status]))
    for column, value in (
        (Order.kind, kind),
        (Order.market, market),
        (Order.symbol, symbol and symbol.upper()),
        (Order.signal_id, signal_id),
        (Order.account, account),
    ):
        if value:
            query = query.where(column == value)
    if since is not None:
        query = query.where(Order.created_at >= since)
    if until is not None:
        query = query.where(Order.created_at < until)
    if cursor is not None and int(cursor) <= MAX_ROW_ID:  # a larger one is past every id
        query = query.where(Order.id < int(cursor))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": str(rows[-1].id) if more else None}


@router.get("/positions", response_model=PositionPage, summary="Positions, newest first")
def list_positions(
    session: ReadSessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    market: Market | None = None,
    symbol: SymbolFilter | None = None,
    strategy: Text | None = None,
    account: Text | None = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict[str, Any]:
    query = select(Position).order_by(Position.id.desc()).limit(limit + 1)
    for column, value in (
        (Position.status, status),
        (Position.market, market),
        (Position.symbol, symbol and symbol.upper()),
        (Position.strategy, strategy),
        (Position.account, account),
    ):
        if value:
            query = query.where(column == value)
    if cursor is not None and int(cursor) <= MAX_ROW_ID:  # a larger one is past every id
        query = query.where(Position.id < int(cursor))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    prices = marks.fetch(redis, settings.queue_name, now=utcnow().timestamp())
    items = [_position_out(session, row, prices) for row in rows]
    return {"items": items, "next_cursor": str(rows[-1].id) if more else None}


def _position_out(
    session: Session, position: Position, prices: dict[tuple[str, str], Decimal]
) -> PositionOut:
    """The position with its live bracket (levels, what its stop covers) and its value at the
    price the monitor last read."""
    holding = held(position)
    levels, protected = (
        bracket_view(session, position) if position.status == "open" else (None, Decimal(0))
    )
    mark = prices.get((position.market, position.symbol)) if position.status == "open" else None
    unrealized = None
    if mark is not None and position.entry_avg_price is not None and holding:
        sign = 1 if position.side == "BUY" else -1
        unrealized = (sign * (mark - position.entry_avg_price) * holding).quantize(Decimal("1e-8"))
    return PositionOut.model_validate(
        {
            **{c.key: getattr(position, c.key) for c in Position.__table__.columns},
            "held": holding,
            "take_profit": levels.take_profit if levels else None,
            "stop_price": levels.stop_price if levels else None,
            "protected": protected,
            "mark_price": mark,
            "unrealized_pnl": unrealized,
        }
    )


def _algo_out(
    algo: AlgoPace, fills: list[tuple[datetime, Decimal]], quality: Quality | None
) -> AlgoOut:
    verdict, policy = algo.verdict, algo.policy
    return AlgoOut(
        fills=[FillPoint(time=time, filled=filled) for time, filled in fills],
        quality=None if quality is None else QualityOut.model_validate(quality.as_json()),
        order=OrderOut.model_validate(algo.order),
        strategy=algo.signal.strategy if algo.signal else None,
        start=algo.start,
        policy=PolicyOut(
            grace=policy.grace,
            min_ratio=policy.min_ratio,
            slack=policy.slack,
            stall_seconds=policy.stall_window(algo.order.duration),
        ),
        pace=None
        if verdict is None
        else PaceOut(
            state=verdict.state.value,
            schedule=verdict.schedule,
            required=verdict.required,
            fill_fraction=verdict.fill_fraction,
            elapsed=int(verdict.elapsed),
            behind=verdict.behind,
            reason=verdict.reason,
            child_interval=verdict.cadence.interval.quantize(Decimal(1))
            if verdict.cadence
            else None,
            children=verdict.children,
            as_of=algo.as_of,
            source="monitor" if algo.source == MONITOR else "database",
        ),
    )


@router.get("/algos", response_model=AlgoList, summary="Working algos with schedule vs fill")
def list_algos(
    session: ReadSessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    recent_hours: Annotated[int, Query(ge=0, le=168)] = 0,
    account: Text | None = None,
) -> AlgoList:
    """The monitor's own pace verdicts (see ``app/monitoring/queries.py``), with each algo's
    fills and its signal's execution quality; with ``recent_hours``, also the algos that ended
    in that many hours (newest first); with ``account``, only that account's."""
    now = utcnow()
    published = verdicts.fetch(redis, settings.queue_name, working_ids(session))
    algos = working_algos(session, settings, now=now, published=published)
    if recent_hours:
        since = now - timedelta(hours=recent_hours)
        algos += recent_algos(session, settings, now=now, since=since)
    if account:
        algos = [a for a in algos if a.order.account == account]
    paths = fill_paths(session, [a.order.id for a in algos])
    qualities = measure_each(session, [a.order.signal_id for a in algos])
    return AlgoList(
        now=now,
        items=[
            _algo_out(a, paths[a.order.id], qualities.get(a.order.signal_id or "")) for a in algos
        ],
    )


# ---- acting --------------------------------------------------------------------------------


def _client(settings: Settings, redis: Any, account: str = DEFAULT_ACCOUNT) -> BinanceClient:
    """A client on ``account``'s key (the order's: another key cannot see it)."""
    wait = min(settings.rate_limit_max_wait, CANCEL_MAX_WAIT)
    configured = configured_accounts(settings).get(account)
    if configured is None:
        raise Conflict(f"account {account} is not configured: its orders cannot be reached")
    return BinanceClient.from_settings(
        settings.model_copy(update={"rate_limit_max_wait": wait}),
        redis,
        credentials=configured.credentials,
        account="" if account == DEFAULT_ACCOUNT else account,
        observer=exchange_observer(redis, settings, account),
    )


def _cancel_out(done: Cancelled) -> CancelOut:
    return CancelOut(order_id=done.order_id, result=done.result, detail=done.detail)


@router.post(
    "/algos/{order_id}/cancel",
    response_model=CancelOut,
    summary="Cancel a working algo",
    responses=responses(
        404,
        409,
        502,
        descriptions={409: "Not a TWAP or VP algo, or not on the exchange yet"},
    ),
)
def cancel(
    order_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    body: CancelIn | None = None,
) -> CancelOut:
    order = session.get(Order, order_id)
    client = _client(settings, redis, order.account if order is not None else DEFAULT_ACCOUNT)
    reason = (body or CancelIn()).reason
    try:
        done = cancel_algo(session, client, order_id, cause="operator", reason=reason, by=ADMIN,
                           now=utcnow())  # fmt: skip
    finally:
        client.close()
    return _cancel_out(done)


def _halt_out(halt: controls.Halt | None, **extra: Any) -> HaltOut:
    if halt is None:
        return HaltOut(halted=False, **extra)
    return HaltOut(halted=True, reason=halt.reason, since=halt.since, by=halt.by, **extra)


@router.get("/halt", response_model=HaltOut, summary="The kill switch")
def get_halt(session: ReadSessionDep, account: Text | None = None) -> HaltOut:
    """Every account's halt, or (with ``account``) whether that account is halted."""
    return _halt_out(controls.current_halt(session, account))


@router.post(
    "/halt",
    response_model=HaltOut,
    summary="Stop new entries (kill switch)",
    responses=responses(404, descriptions={404: "No such account"}),
)
def halt(
    session: SessionDep, settings: SettingsDep, redis: RedisDep, body: HaltIn | None = None
) -> HaltOut:
    """Exits, cancels and protection keep running; ``cancel_working`` also cancels every
    working algo. Halting twice keeps the first halt."""
    body = body or HaltIn()
    if body.account is not None and body.account not in configured_accounts(settings):
        raise NotFound(f"no account {body.account}")
    state = controls.halt(session, reason=body.reason, by=ADMIN, account=body.account)
    session.commit()
    log.warning("halted by the admin API (%s): %s", body.account or "every account", body.reason)
    cancels: list[CancelOut] = []
    errors: list[str] = []
    if body.cancel_working:
        by_account: dict[str, list[int]] = {}
        for algo in working_algos(session, settings, now=utcnow()):
            if body.account in (None, algo.order.account):
                by_account.setdefault(algo.order.account, []).append(algo.order.id)
        for account, ids in by_account.items():
            try:
                client = _client(settings, redis, account)
            except AppError as exc:
                errors.append(f"account {account}: {exc.message}")
                continue
            try:
                for order_id in ids:
                    try:
                        done = cancel_algo(session, client, order_id, cause="halt",
                                           reason=body.reason, by=ADMIN, now=utcnow())  # fmt: skip
                        cancels.append(_cancel_out(done))
                    except AppError as exc:
                        errors.append(f"order {order_id}: {exc.message}")
            finally:
                client.close()
    return _halt_out(state, cancels=cancels, cancel_errors=errors)


@router.post("/resume", response_model=HaltOut, summary="Allow new entries again")
def resume(session: SessionDep, account: Text | None = None) -> HaltOut:
    """Lift the halt of every account, or (with ``account``) that account's own halt."""
    if controls.resume(session, by=ADMIN, account=account):
        session.commit()
        log.warning("resumed by the admin API (%s)", account or "every account")
    return _halt_out(None)
