"""Protecting a position: its pending take-profit / stop-loss placed once it holds something.

The bracket is sized to what the position actually received (fills minus base-asset
commissions, see ``positions.apply_entry_fills``); on spot it is also capped by the free
balance of the base asset, so it can never ask to sell coins the account does not have.
Client ids come from the position and the bracket's generation (leg ``bracket``, then
``bracket2``, ``bracket3``... after a replacement), the generation claimed by compare-and-set
on ``positions.bracket_gen``: placing the same bracket from the worker, the monitor and the
resting-order follower at once makes one order.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.execution.cancels import cancel_order
from app.execution.claims import Claim
from app.execution.context import ExecContext
from app.execution.journal import add_orders, event
from app.execution.placement import OrderRejected, place
from app.execution.planning import BRACKET, Levels, NotProtected, plan_bracket
from app.models import TERMINAL_ORDER_STATUSES, Order, OrderStatus, Position

log = logging.getLogger(__name__)

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)
REJECTED_NOTE = "bracket rejected"
# Generations another placer claimed first, in one call, before leaving it to the next pass.
MAX_GENERATION_RACES = 5


def bracket_orders(session: Session, position: Position) -> list[Order]:
    """Every bracket order the position ever had, oldest first."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.position_id == position.id, Order.leg.startswith(BRACKET))
            .order_by(Order.id)
        )
    )


def live_brackets(session: Session, position: Position) -> list[Order]:
    return [o for o in bracket_orders(session, position) if o.status not in TERMINAL]


def _generation(orders: list[Order]) -> int:
    return max((int((o.extra or {}).get("bracket_gen", 1)) for o in orders), default=0) + 1


def _missing_legs(position: Position, levels: Levels, live: list[Order]) -> set[str]:
    """Levels without a live order. On spot one order (OCO) holds both, so any live bracket
    covers the position (a tp/sl signal cancels it before asking for a new one)."""
    needed = {n for n, v in (("tp", levels.take_profit), ("sl", levels.stop_price)) if v}
    if position.market == "spot":
        return set() if live else needed
    covered: set[str] = set()
    for order in live:
        leg = (order.extra or {}).get("bracket_leg", "both")
        covered |= {"tp", "sl"} if leg == "both" else {leg}
    return needed - covered


def current_price(ctx: ExecContext, market: str, symbol: str) -> Decimal:
    """Last spot price, or the USD-M mark price (what futures triggers and limits use)."""
    if market == "usdm":
        return ctx.client.mark_price(symbol).markPrice
    return ctx.client.ticker_price(symbol)


def bracket_key(position_id: int) -> str:
    """What a position's bracket client ids derive from, with the leg ``bracket<gen>``."""
    return f"position-{position_id}"


def protect_position(
    ctx: ExecContext,
    session: Session,
    position: Position,
    *,
    reason: str,
    signal_id: str | None = None,
    claim: Claim | None = None,
) -> Order | None:
    """Place the position's pending bracket (OCO on spot; conditional TAKE_PROFIT_MARKET/
    STOP_MARKET via /fapi/v1/algoOrder with closePosition on usdm) for the quantity it holds
    now (rounded down to the step size), exactly once, or record "too small to protect" on
    position.bracket_note and return None. Safe to call repeatedly and concurrently.

    A new bracket is a new generation: claimed by compare-and-set on ``positions.
    bracket_gen`` in the transaction that writes its rows, with client ids derived from
    (position id, generation). So the worker of a tp/sl signal, the monitor and the
    resting-order follower, protecting the same position at once, compute the same ids and
    only the one that claims the generation writes (and sends) it; the others place or find
    the rows it wrote. ``signal_id`` only names who asked (the rows' signal).

    Commits ``session`` (an order row must be durable before it is sent, and no transaction
    is held open across a request to the exchange).
    """
    for _ in range(MAX_GENERATION_RACES):
        levels = Levels.from_json(position.pending_bracket)
        if position.status != "open" or levels.empty:
            return None
        seen_gen = session.execute(
            select(Position.bracket_gen).where(Position.id == position.id)
        ).scalar_one()
        history = bracket_orders(session, position)
        live = [o for o in history if o.status not in TERMINAL]
        session.commit()
        live = [
            row
            if row.status in (OrderStatus.WORKING.value, OrderStatus.FILLED.value)
            else _place(ctx, session, position, row, claim) or row
            for row in live
        ]
        missing = _missing_legs(position, levels, live)
        if not missing:
            return live[0] if live else None
        if history and not live and (position.bracket_note or "").startswith(REJECTED_NOTE):
            return None  # a new level (tp/sl signal) clears the note and allows another try
        levels = Levels(
            levels.take_profit if "tp" in missing else None,
            levels.stop_price if "sl" in missing else None,
            levels.stop_limit if "sl" in missing else None,
        )
        quantity = position.quantity - (position.exit_quantity or 0)
        if quantity <= 0:
            return _not_protected(session, position, "too small to protect: nothing received yet")
        rules = ctx.client.symbol_rules(position.symbol, position.market)  # type: ignore[arg-type]
        price = current_price(ctx, position.market, position.symbol)
        if position.market == "spot" and position.side == "BUY":
            quantity = min(quantity, ctx.client.account().free(rules.base_asset))
        generation = max(seen_gen, _generation(history) - 1) + 1
        leg = BRACKET if generation == 1 else f"{BRACKET}{generation}"
        owner = signal_id or position.opened_by
        planned = plan_bracket(
            signal_id=bracket_key(position.id), leg=leg, market=position.market,
            symbol=position.symbol, rules=rules, price=price, position_side=position.side,
            quantity=quantity, levels=levels, slippage=ctx.settings.stop_limit_slippage,
        )  # fmt: skip
        if isinstance(planned, NotProtected):
            return _not_protected(session, position, planned.note)
        claimed = session.execute(
            update(Position)
            .where(Position.id == position.id, Position.bracket_gen == seen_gen)
            .values(bracket_gen=generation)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            # Another placer claimed this generation (and wrote its rows in the same
            # transaction): start again from what it wrote.
            session.rollback()
            session.refresh(position)
            continue
        intents = [replace(i, facts={**i.facts, "bracket_gen": generation}) for i in planned]
        rows = add_orders(session, intents, signal_id=owner, position_id=position.id)
        position.bracket_note = None
        event(session, "bracket", f"protecting {position.symbol} ({reason})", signal_id=owner,
              position_id=position.id, quantity=str(quantity), generation=generation,
              **levels.to_json())  # fmt: skip
        session.commit()
        placed = [_place(ctx, session, position, row, claim) for row in rows]
        return next((o for o in placed if o is not None), None)
    log.warning("position %s: bracket generation contended; left to the next pass", position.id)
    return None


def _place(
    ctx: ExecContext, session: Session, position: Position, row: Order, claim: Claim | None
) -> Order | None:
    try:
        return place(ctx, row.id, claim)
    except OrderRejected as exc:
        position.bracket_note = f"{REJECTED_NOTE}: {exc.msg} (code {exc.code})"
        event(session, "bracket", position.bracket_note, signal_id=row.signal_id,
              order_id=row.id, position_id=position.id)  # fmt: skip
        session.commit()
        return None


def _not_protected(session: Session, position: Position, note: str) -> Order | None:
    if position.bracket_note != note:
        position.bracket_note = note
        event(session, "bracket", note, signal_id=position.opened_by, position_id=position.id)
    session.commit()
    return None


def cancel_brackets(
    ctx: ExecContext,
    session: Session,
    position: Position,
    *,
    reason: str,
    legs: tuple[str, ...] = ("tp", "sl", "both"),
    claim: Claim | None = None,
) -> list[Order]:
    """Cancel the position's live bracket orders (those protecting ``legs``); commits."""
    live = [
        o
        for o in live_brackets(session, position)
        if (o.extra or {}).get("bracket_leg", "both") in legs
    ]
    session.commit()
    return [cancel_order(ctx, o.id, reason=reason, claim=claim) for o in live]
