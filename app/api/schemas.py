"""Admin API answers and requests. Quantities and prices are strings (exact decimals), and so
are venue ids, which exceed what a JavaScript number holds exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer


def _as_utc(value: Any) -> Any:
    # SQLite hands datetimes back without a zone; everything is stored in UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# PostgreSQL text cannot hold a NUL character: a string with one is refused where it is
# parsed (422), not by the database (500).
NO_NUL = r"^[^\x00]*$"
# Row ids are 32-bit integers in the database; a larger one can name nothing.
MAX_ROW_ID = 2**31 - 1

DecimalStr = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]
IdStr = Annotated[int, PlainSerializer(str, return_type=str)]
Time = Annotated[datetime, BeforeValidator(_as_utc)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    # Strict: `"cancel_working": 0` is not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True)


class SignalOut(_Out):
    id: str
    source_id: str | None
    action: str
    market: str
    symbol: str
    side: str | None
    strategy: str | None
    account: str = Field(description="the account it runs on; * for a signal sent to several")
    parent_id: str | None = Field(description="the signal this one runs one account of")
    status: str
    status_reason: str | None
    received_at: Time
    updated_at: Time
    expires_at: Time | None
    enqueued_at: Time | None
    attempts: int


class FillOut(_Out):
    id: int
    venue_fill_id: str
    price: DecimalStr
    qty: DecimalStr
    quote_qty: DecimalStr
    fee: DecimalStr
    fee_asset: str | None
    time: Time | None


class OrderOut(_Out):
    id: int
    signal_id: str | None
    position_id: int | None
    account: str
    leg: str
    kind: str
    market: str
    symbol: str
    side: str
    client_id: str
    venue_id: IdStr | None
    status: str
    venue_status: str | None
    quantity: DecimalStr | None
    quote_quantity: DecimalStr | None
    price: DecimalStr | None
    stop_price: DecimalStr | None
    limit_price: DecimalStr | None
    duration: int | None
    urgency: str | None
    executed_qty: DecimalStr
    executed_amt: DecimalStr
    avg_price: DecimalStr | None
    error_code: int | None
    error_msg: str | None
    attempts: int
    book_time: Time | None
    end_time: Time | None
    last_fill_at: Time | None
    created_at: Time
    updated_at: Time


class OrderWithFills(OrderOut):
    params: dict[str, Any] | None
    extra: dict[str, Any] | None
    fills: list[FillOut]


class EventOut(_Out):
    id: int
    signal_id: str | None
    order_id: int | None
    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: Time


class QualityOut(BaseModel):
    """Execution quality (``app.execution.quality``): prices as strings, slippage in basis
    points (positive is a cost), delays in seconds from receipt."""

    side: str | None
    arrival_price: DecimalStr | None
    avg_price: DecimalStr | None
    filled_qty: DecimalStr
    fees_quote: DecimalStr | None
    fees_other: dict[str, DecimalStr]
    slippage_arrival_bps: DecimalStr | None
    vwap: DecimalStr | None = Field(description="the market's VWAP over the execution window")
    slippage_vwap_bps: DecimalStr | None
    delays: dict[str, float | None] = Field(
        description="seconds from receipt to: queued, first_order, first_fill, last_fill"
    )


class SignalDetail(SignalOut):
    source_ip: str | None
    payload: dict[str, Any]
    sizing: dict[str, Any] | None = Field(
        None,
        description="balance_percent / risk_percent: the quantity sent and how it was derived "
        "(method, percent, price, free balance and asset, equity, fee rate, leverage, stop, "
        "the quantity wanted before caps and rounding, the caps that applied)",
    )
    orders: list[OrderWithFills]
    events: list[EventOut]
    quality: QualityOut | None


class SignalPage(BaseModel):
    items: list[SignalOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class PositionOut(_Out):
    id: int
    strategy: str
    account: str
    market: str
    symbol: str
    side: str = Field(description="BUY opened a long, SELL a short")
    status: str
    quantity: DecimalStr
    entry_avg_price: DecimalStr | None
    exit_quantity: DecimalStr
    realized_pnl: DecimalStr | None
    leverage: int | None = Field(description="usdm: the leverage the entry set (or found)")
    margin_type: str | None = Field(description="usdm: isolated or cross")
    bracket_note: str | None
    opened_by: str | None
    opened_at: Time
    closed_at: Time | None
    held: DecimalStr = Field(description="what the position holds now (entries less exits)")
    take_profit: DecimalStr | None = Field(description="the live bracket's take-profit level")
    stop_price: DecimalStr | None = Field(description="the live bracket's stop level")
    protected: DecimalStr = Field(description="quantity the live stop covers")
    mark_price: DecimalStr | None = Field(
        description="the price the monitor read in its last cycle (null when stale)"
    )
    unrealized_pnl: DecimalStr | None = Field(description="held at mark_price against entry")


class PositionPage(BaseModel):
    items: list[PositionOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class PolicyOut(BaseModel):
    grace: DecimalStr
    min_ratio: DecimalStr
    slack: DecimalStr
    stall_seconds: DecimalStr | None


class PaceOut(BaseModel):
    state: str
    schedule: DecimalStr | None = Field(description="share a linear schedule has due")
    required: DecimalStr | None = Field(
        None, description="share the pace rule asks for (min_ratio x schedule one child earlier)"
    )
    fill_fraction: DecimalStr = Field(description="share executed, from the child orders")
    elapsed: int = Field(description="seconds since the algo started, at as_of")
    behind: bool
    reason: str
    child_interval: DecimalStr | None = Field(None, description="seconds, learned or assumed")
    children: int = Field(0, description="child orders seen")
    as_of: Time | None = Field(None, description="when the verdict was reached")
    source: Literal["monitor", "database"] = Field(
        "monitor", description="monitor: its own verdict; database: judged from stored fills"
    )


class FillPoint(BaseModel):
    time: Time
    filled: DecimalStr = Field(description="quantity filled so far, this fill included")


class AlgoOut(BaseModel):
    order: OrderOut
    strategy: str | None
    start: Time
    policy: PolicyOut
    pace: PaceOut | None = Field(description="null when the order has no base quantity")
    fills: list[FillPoint] = Field(description="the child fills in time order, cumulative")
    quality: QualityOut | None = Field(
        None, description="its signal's execution quality, as in GET /api/signals/{id}"
    )


class AlgoList(BaseModel):
    now: Time = Field(description="the receiver's clock when it answered")
    items: list[AlgoOut]


class CancelIn(_In):
    reason: str = Field("cancelled by an operator", max_length=500, pattern=NO_NUL)


class CancelOut(BaseModel):
    order_id: int
    result: Literal["cancelled", "already_done"]
    detail: str


class HaltIn(_In):
    reason: str = Field("halted by an operator", min_length=1, max_length=500, pattern=NO_NUL)
    cancel_working: bool = Field(False, description="also cancel every working algo")
    account: str | None = Field(
        None, max_length=24, pattern=r"^[a-z][a-z0-9_]*$", description="halt one account only"
    )


class HaltOut(BaseModel):
    halted: bool
    reason: str | None = None
    since: Time | None = None
    by: str | None = None
    cancels: list[CancelOut] = Field(default_factory=list)
    cancel_errors: list[str] = Field(default_factory=list)
