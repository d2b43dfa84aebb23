"""Never naked: keep every position covered by live protective orders for what it holds.

``protect_position`` is declarative. The desired state is the position's levels
(``pending_bracket``) for what it holds now (fills net of base-asset fees, minus what exits
closed); the actual state is its live bracket rows, each recording the levels and the holding
it was sized for (``extra.levels`` / ``extra.sized_for``). When they differ a new generation
is placed:

* no live bracket, or one whose levels changed: place one;
* the holding grew by a lot step or more: resize, so a TWAP entry is protected as it fills,
  not when it ends. The new generation sells the whole holding, so the growth need not be an
  order's worth (a minimum notional of its own): a threshold of one order's worth would
  leave up to 100 USDT of a USD-M entry naked for as many intervals as its fills take to
  reach it;
* the bracket is larger than the holding (an exit took part of it): shrink, so no order can
  sell or close more than the position holds.

Spot locks the coins an OCO sells, so the old bracket is cancelled before the new one is
placed (a naked window of one request); USD-M reduce-only orders carry their own quantity,
so the new generation is placed first and the old one cancelled after (no window). A spot
replacement the exchange rejects is undone in the same call: the old levels and quantity go
out again.

A level the market already passed (:class:`~app.execution.planning.Crossed`) can never
rest: with ``stop_loss.if_crossed`` ``exit`` (the default) the position is stopped out now
(its working entry cancelled, its bracket cancelled, what it holds closed at market,
reduce-only on USD-M); with ``alert`` an ``unprotected`` event is recorded. A permanent
failure to protect is an ``unprotected`` event too, and the position's ``bracket_note``
starts with ``unprotected:`` while it lasts (``/health/ready`` reads it).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.exchange.filters import Market, SymbolRules
from app.execution.brackets import (
    MAX_GENERATION_RACES,
    TERMINAL,
    UNPROTECTED,
    bracket_key,
    bracket_orders,
    current_price,
    place_bracket_row,
)
from app.execution.breakeven import EntryFill, breakeven_price, entry_fees, with_breakeven
from app.execution.cancels import cancel_order
from app.execution.claims import Claim, transition
from app.execution.context import ExecContext
from app.execution.journal import add_orders, event, exit_filled
from app.execution.ladder import targets_done
from app.execution.placement import OrderRejected, place
from app.execution.planning import (
    BRACKET,
    Crossed,
    Levels,
    NotProtected,
    OrderIntent,
    closing_side,
    ladder_slices,
    plan_bracket,
    plan_market_close,
)
from app.execution.positions import ENTRY_LEG, apply_exit_fills, entry_fills
from app.models import Order, OrderStatus, Position, SignalStatus

log = logging.getLogger(__name__)

ZERO = Decimal(0)
STOP_OUT_LEG = "close-stop"
LIVE = (
    OrderStatus.PLANNED.value,
    OrderStatus.SENDING.value,
    OrderStatus.UNKNOWN.value,
    OrderStatus.WORKING.value,
)


def held(position: Position) -> Decimal:
    """What the position holds now: received by its entries, less what exits closed."""
    return max((position.quantity or ZERO) - (position.exit_quantity or ZERO), ZERO)


def live_orders(session: Session, position_id: int, prefix: str) -> list[Order]:
    return list(
        session.scalars(
            select(Order).where(
                Order.position_id == position_id,
                Order.leg.startswith(prefix),
                Order.status.in_(LIVE),
            )
        )
    )


def close_live(session: Session, position_id: int) -> bool:
    return bool(
        live_orders(session, position_id, "exit") or live_orders(session, position_id, "close")
    )


def bracket_view(session: Session, position: Position) -> tuple[Levels | None, Decimal]:
    """The live bracket's levels and the quantity its stop covers (at most the holding),
    for readers (the admin API)."""
    live = live_orders(session, position.id, BRACKET)
    levels = next((lv for lv in map(_row_levels, live) if lv is not None), None)
    if levels is None or levels.stop_price is None:
        return levels, ZERO
    sized = [s for s in map(_sized_for, live) if s is not None]
    return levels, min(max(sized, default=ZERO), held(position))


def _sized_for(order: Order) -> Decimal | None:
    raw = (order.extra or {}).get("sized_for")
    return Decimal(str(raw)) if raw is not None else None


def _row_levels(order: Order) -> Levels | None:
    raw = (order.extra or {}).get("levels")
    return Levels.from_json(raw) if raw is not None else None


def _covered_legs(live: list[Order]) -> set[str]:
    out: set[str] = set()
    for order in live:
        leg = (order.extra or {}).get("bracket_leg", "both")
        out |= {"tp", "sl"} if leg == "both" else {leg}
    return out


def why_replace(
    position: Position,
    levels: Levels,
    live: list[Order],
    holding: Decimal,
    *,
    step: Decimal,
    rules: SymbolRules,
) -> str | None:
    """Why the live bracket does not match what the position needs, or None. Pure."""
    if not live:
        return "no live bracket"
    if any((lv := _row_levels(o)) is not None and lv != levels for o in live):
        return "levels changed"
    if position.market != "spot":
        needed = {n for n, v in (("tp", levels.take_profit), ("sl", levels.stop_price)) if v}
        if levels.trailing_rate is not None and levels.stop_price is not None:
            needed.add("trail")
        if needed - _covered_legs(live):
            return "a leg is missing"
    quantities = [o.quantity for o in live if o.quantity is not None]
    if quantities and max(quantities) > holding:
        return f"bracket {max(quantities)} exceeds the holding {holding}"
    if levels.targets:
        ladder = [o for o in live if "target" in (o.extra or {})]
        covered = {int((o.extra or {})["target"]) for o in ladder}
        total = position.quantity or ZERO
        slices = ladder_slices(levels, rules, position.market, total=total, holding=holding)
        wanted = {s.target for s in slices}
        if wanted - covered:
            missing = ", ".join(str(t) for t in sorted(wanted - covered))
            return f"take-profit target {missing} not covered"
        covering = sum((o.quantity or ZERO for o in ladder), ZERO)
        if covering > holding:
            return f"the targets cover {covering}, more than the holding {holding}"
    sized = [s for s in (_sized_for(o) for o in live) if s is not None]
    if sized and holding - min(sized) >= step and holding > min(sized):
        return f"holding grew to {holding} (bracket sized for {min(sized)})"
    return None


def _rejected_before(history: list[Order], levels: Levels, holding: Decimal) -> bool:
    """The exchange already refused a bracket at these levels for this holding: the same
    request would be refused again. A new level or a new holding tries again."""
    return any(
        o.status == OrderStatus.REJECTED.value
        and _row_levels(o) == levels
        and _sized_for(o) == holding
        for o in history
    )


def protect_position(
    ctx: ExecContext,
    session: Session,
    position: Position,
    *,
    reason: str,
    signal_id: str | None = None,
    claim: Claim | None = None,
) -> Order | None:
    """Bring the position's protection in line with its levels and holding (see the module
    docstring); returns a live bracket order, or None (nothing to protect, too small, not
    possible: ``bracket_note`` says why). Safe to call repeatedly and concurrently: a new
    generation is claimed by compare-and-set on ``positions.bracket_gen`` in the transaction
    that writes its rows, and client ids derive from (position id, generation).

    Commits ``session`` (a row is durable before it is sent; no transaction is held across a
    request)."""
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
            if row.status == OrderStatus.WORKING.value
            else place_bracket_row(ctx, session, position, row, claim) or row
            for row in live
        ]
        live = _drop_superseded(ctx, [o for o in live if o.status not in TERMINAL], claim)
        holding = held(position)
        if holding <= 0:
            return live[0] if live else None
        rules = ctx.client.symbol_rules(position.symbol, Market(position.market))
        step = rules.lot.step_size if rules.lot is not None else ZERO
        levels = _with_breakeven(session, position, levels, holding, rules)
        why = why_replace(position, levels, live, holding, step=step, rules=rules)
        if why is None:
            if (position.bracket_note or "").startswith(UNPROTECTED):
                position.bracket_note = None  # a live bracket covers it again
                event(session, "protected", "the position is protected again",
                      signal_id=position.opened_by, position_id=position.id)  # fmt: skip
                session.commit()
            return live[0] if live else None
        if _rejected_before(history, levels, holding):
            return None
        price = current_price(ctx, position.market, position.symbol)
        quantity = holding
        if position.market == "spot" and position.side == "BUY":
            # The old bracket's coins are locked until it is cancelled.
            locked = sum((o.quantity or ZERO for o in live), ZERO)
            free = ctx.client.account().free(rules.base_asset) + locked
            quantity = min(quantity, free)
        generation = max(seen_gen, _generation(history) - 1) + 1
        leg = BRACKET if generation == 1 else f"{BRACKET}{generation}"
        owner = signal_id or position.opened_by
        planned = plan_bracket(
            signal_id=bracket_key(position.id), leg=leg, market=position.market,
            symbol=position.symbol, rules=rules, price=price, position_side=position.side,
            quantity=quantity, levels=levels, slippage=ctx.settings.stop_limit_slippage,
            entry_quantity=position.quantity,
        )  # fmt: skip
        if isinstance(planned, Crossed):
            return crossed(ctx, session, position, planned, levels, claim=claim)
        if isinstance(planned, NotProtected):
            note(session, position, planned.note, unprotected=not live)
            return live[0] if live else None
        if not _claim_generation(session, position, seen_gen, generation):
            session.refresh(position)
            continue
        facts = {"bracket_gen": generation, "sized_for": str(holding)}
        intents = [replace(i, facts={**i.facts, **facts}) for i in planned]
        rows = add_orders(
            session, intents, signal_id=owner, position_id=position.id, now=ctx.clock.now()
        )
        position.bracket_note = None
        event(session, "bracket", f"protecting {position.symbol} ({reason}; {why})",
              signal_id=owner, position_id=position.id, quantity=str(quantity),
              generation=generation, **levels.to_json())  # fmt: skip
        session.commit()
        # A first bracket, or new levels, is news; a resize as the holding changes is not
        # (a TWAP entry is re-bracketed at every step it fills).
        news = not live or any(_row_levels(o) != levels for o in live)
        return _swap(ctx, session, position, live, rows, claim=claim, reason=reason, news=news)
    log.warning("position %s: bracket generation contended; left to the next pass", position.id)
    return None


def _with_breakeven(
    session: Session, position: Position, levels: Levels, holding: Decimal, rules: SymbolRules
) -> Levels:
    """The levels to protect with now: the stop at breakeven once its target has filled."""
    if levels.breakeven_after is None or not position.quantity:
        return levels
    step = rules.lot.step_size if rules.lot is not None else ZERO
    if targets_done(position.quantity, holding, levels.targets, step) < levels.breakeven_after:
        return levels
    fills = [
        EntryFill(f.price, f.qty, f.quote_qty, f.fee, f.fee_asset)
        for f in entry_fills(session, position)
    ]
    fees = entry_fees(fills, base_asset=rules.base_asset, quote_asset=rules.quote_asset)
    tick = rules.price.tick_size if rules.price is not None else ZERO
    long = position.side == "BUY"
    price = breakeven_price(long=long, received=position.quantity,
                            entry_cost=position.entry_cost, fees=fees, tick=tick)  # fmt: skip
    return with_breakeven(levels, long=long, total=position.quantity, holding=holding,
                          step=step, breakeven=price)  # fmt: skip


def _gen(order: Order) -> int:
    return int((order.extra or {}).get("bracket_gen", 1))


def _drop_superseded(ctx: ExecContext, live: list[Order], claim: Claim | None) -> list[Order]:
    """A replacement interrupted between placing the new generation and cancelling the old
    one (a crash, a temporary error) leaves both live: once the newest is working, the older
    ones are cancelled, so the position is never covered twice over."""
    if len({_gen(o) for o in live}) < 2:
        return live
    newest = max(_gen(o) for o in live)
    if any(_gen(o) == newest and o.status != OrderStatus.WORKING.value for o in live):
        return live
    for order in live:
        if _gen(order) != newest:
            cancel_order(ctx, order.id, reason="superseded by a newer bracket", claim=claim)
    return [o for o in live if _gen(o) == newest]


def _generation(orders: list[Order]) -> int:
    return max((int((o.extra or {}).get("bracket_gen", 1)) for o in orders), default=0) + 1


def _claim_generation(session: Session, position: Position, seen: int, generation: int) -> bool:
    claimed = session.execute(
        update(Position)
        .where(Position.id == position.id, Position.bracket_gen == seen)
        .values(bracket_gen=generation)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        # Another placer claimed it (and wrote its rows in the same transaction).
        session.rollback()
        return False
    return True


def _swap(
    ctx: ExecContext,
    session: Session,
    position: Position,
    old: list[Order],
    new: list[Order],
    *,
    claim: Claim | None,
    reason: str,
    news: bool = True,
) -> Order | None:
    """Replace ``old`` by ``new`` on the exchange: USD-M places first, spot cancels first.
    ``news``: announce the new bracket once it is live (``bracket_placed``)."""
    why = f"replaced ({reason})"
    if position.market == "spot":
        before = held(position)
        ended = [cancel_order(ctx, order.id, reason=why, claim=claim) for order in old]
        if any(o.executed_qty for o in ended):
            # A leg executed before the cancel reached it: the holding changed, so the new
            # rows (sized for the old one) never go out; the next pass sizes them again.
            session.refresh(position)
            apply_exit_fills(session, position, now=ctx.clock.now())
            session.commit()
            if held(position) != before:
                for row in new:
                    cancel_order(ctx, row.id, reason="the holding changed", claim=claim)
                return None
        spot = [place_bracket_row(ctx, session, position, row, claim) for row in new]
        if any(p is None for p in spot) and old:
            return _restore(ctx, session, position, old, claim=claim)
        if news:
            _announce(session, position, [p for p in spot if p is not None], reason)
        return next((p for p in spot if p is not None), None)
    placed = [place_bracket_row(ctx, session, position, row, claim) for row in new]
    if any(p is None for p in placed):
        # The new generation was refused: the old one stays; cancel what did go out of it.
        for sent in placed:
            if sent is not None:
                cancel_order(ctx, sent.id, reason="its generation was refused", claim=claim)
        return old[0] if old else None
    for order in old:
        cancel_order(ctx, order.id, reason=why, claim=claim)
    if news:
        _announce(session, position, [p for p in placed if p is not None], reason)
    return placed[0]


def _announce(session: Session, position: Position, placed: list[Order], reason: str) -> None:
    """A bracket is live on the exchange: a ``bracket_placed`` event (a notification)."""
    if not placed:
        return
    # The levels placed: a stop moved to breakeven is not the one the signal gave.
    levels = _row_levels(placed[0]) or Levels.from_json(position.pending_bracket)
    # Spot: one OCO per ladder target, together covering the holding; USD-M: the stop covers
    # it all, the take-profits each a part.
    amounts = [o.quantity or ZERO for o in placed]
    quantity = sum(amounts, ZERO) if position.market == "spot" else max(amounts, default=ZERO)
    kinds = "/".join(sorted({o.kind for o in placed}))
    covers = [
        f"{name} {value.normalize():f}"
        for name, value in (("take-profit", levels.take_profit), ("stop", levels.stop_price))
        if value is not None
    ]
    text = (
        f"{kinds} {placed[0].side} {quantity.normalize():f} {position.symbol}: "
        f"{', '.join(covers) or 'no level'} ({reason})"
    )
    event(session, "bracket_placed", text, signal_id=position.opened_by,
          order_id=placed[0].id, position_id=position.id, side=placed[0].side,
          quantity=f"{quantity.normalize():f}", **levels.to_json())  # fmt: skip
    session.commit()


def _restore(
    ctx: ExecContext, session: Session, position: Position, old: list[Order], *, claim: Claim | None
) -> Order | None:
    """A spot replacement was refused after the old bracket was cancelled: place the old
    bracket's orders again (its levels and quantity) as a new generation."""
    session.refresh(position)
    generation = (position.bracket_gen or 0) + 1
    if not _claim_generation(session, position, position.bracket_gen or 0, generation):
        return None  # another placer is protecting it right now
    leg = f"{BRACKET}{generation}"
    intents = [_again(o, bracket_key(position.id), leg, generation) for o in old]
    rows = add_orders(session, intents, signal_id=position.opened_by, position_id=position.id,
                      now=ctx.clock.now())  # fmt: skip
    refused = position.bracket_note
    event(session, "bracket", f"previous bracket restored ({refused})",
          signal_id=position.opened_by, position_id=position.id)  # fmt: skip
    session.commit()
    placed = [place_bracket_row(ctx, session, position, row, claim) for row in rows]
    if any(p is None for p in placed):
        note(session, position, f"restoring the bracket failed: {position.bracket_note}",
             unprotected=True)  # fmt: skip
        return None
    # Protected again, by the old bracket: the refusal stays on record, not as "unprotected".
    position.bracket_note = f"restored after: {(refused or '').removeprefix(UNPROTECTED).strip()}"
    session.commit()
    _announce(session, position, [p for p in placed if p is not None], "previous bracket restored")
    return placed[0]


def _again(order: Order, key: str, leg: str, generation: int) -> OrderIntent:
    """An intent that re-places ``order`` as it was, under a new generation's client ids."""
    from app.exchange.ids import client_order_id
    from app.execution.planning import OcoLegIntent

    extra = dict(order.extra or {})

    def dec(value: object) -> Decimal | None:
        return Decimal(str(value)) if value not in (None, "") else None

    bracket_leg = extra.get("bracket_leg", "both")
    # A ladder's rows are one per target: the target keeps their client ids apart.
    own = f"{leg}-t{extra['target']}" if "target" in extra else leg
    name = own if bracket_leg == "both" else f"{own}-{bracket_leg}"

    def leg_of(side: str) -> OcoLegIntent | None:
        raw = extra.get(side)
        if not raw:
            return None
        suffix = "tp" if raw["type"] == "LIMIT_MAKER" else "sl"
        return OcoLegIntent(
            raw["type"], client_order_id(key, f"{own}-{suffix}"), dec(raw.get("price")),
            dec(raw.get("stop_price")), raw.get("time_in_force"), raw.get("trailing_delta"),
        )  # fmt: skip

    keep = {k: v for k, v in extra.items() if k not in ("above", "below", "sent_at", "algoId")}
    return OrderIntent(
        leg=name, kind=order.kind, market=order.market, symbol=order.symbol, side=order.side,
        client_id=client_order_id(key, name), quantity=order.quantity, price=order.price,
        stop_price=order.stop_price, limit_price=order.limit_price,
        reduce_only=bool(extra.get("reduce_only")), order_type=extra.get("order_type"),
        above=leg_of("above"), below=leg_of("below"),
        facts={**keep, "bracket_gen": generation},
    )  # fmt: skip


def note(session: Session, position: Position, text: str, *, unprotected: bool) -> None:
    """Record why the position is not (fully) protected, once per change of reason; an
    ``unprotected`` note is also an ``unprotected`` event."""
    text = f"{UNPROTECTED} {text}" if unprotected and not text.startswith(UNPROTECTED) else text
    if position.bracket_note != text:
        position.bracket_note = text
        event(session, "unprotected" if unprotected else "bracket", text,
              signal_id=position.opened_by, position_id=position.id,
              held=str(held(position)))  # fmt: skip
    session.commit()


def crossed(
    ctx: ExecContext,
    session: Session,
    position: Position,
    why: Crossed,
    levels: Levels,
    *,
    claim: Claim | None = None,
) -> Order | None:
    """A level the market already passed: stop out (``exit``) or tell (``alert``)."""
    if not levels.exit_when_crossed:
        note(session, position, f"{why.note} (if_crossed: alert)", unprotected=True)
        return None
    stop_out(ctx, session, position, reason=why.note, claim=claim)
    return None


def stop_out(
    ctx: ExecContext,
    session: Session,
    position: Position,
    *,
    reason: str,
    claim: Claim | None = None,
) -> Order | None:
    """Close the position now: cancel its working entry (its later fills are closed by the
    next pass), cancel its bracket (on spot it locks the coins), sell or buy back what it
    holds at market (reduce-only on USD-M). Returns the closing order."""
    session.refresh(position)
    if position.status != "open":
        return None
    why = f"stop-out: {reason}"
    entries = live_orders(session, position.id, ENTRY_LEG)
    brackets = [o for o in bracket_orders(session, position) if o.status not in TERMINAL]
    closes = live_orders(session, position.id, "close") + live_orders(session, position.id, "exit")
    session.commit()
    if closes:
        return closes[0]  # already being closed
    ended = [cancel_order(ctx, order.id, reason=why, claim=claim) for order in entries]
    if any(o.status not in TERMINAL for o in ended):
        # Its final fills are not known yet: the bracket keeps protecting what it covers,
        # and the next pass, with the entry ended, stops out the whole holding.
        return None
    # The entry's signal ends with it (the monitor, which ends the signals of the algos it
    # sees end, no longer sees a cancelled row): a signal left ``working`` would refuse the
    # strategy's next entry on the symbol as "still live".
    for order in ended:
        if order.signal_id is not None:
            transition(session, order.signal_id, (SignalStatus.WORKING.value,),
                       SignalStatus.CANCELLED, why, now=ctx.clock.now())  # fmt: skip
    session.commit()
    for order in brackets:
        cancel_order(ctx, order.id, reason=why, claim=claim)
    from app.execution.positions import apply_entry_fills

    rules = ctx.client.symbol_rules(position.symbol, Market(position.market))
    dust = rules.lot.step_size if rules.lot is not None else ZERO
    session.refresh(position)
    apply_entry_fills(session, position)
    # Less than a lot left after exits (a stop that sold what it covered while the entry
    # still bought): no order can sell it, so it is dust and the position closes.
    apply_exit_fills(session, position, now=ctx.clock.now(), dust=dust)
    holding = held(position)
    session.commit()
    if holding <= 0 or position.status != "open":
        left = f"; dust {holding} left" if holding > 0 else "; nothing held"
        event(session, "stop_out", f"{why}{left}", signal_id=position.opened_by,
              position_id=position.id)  # fmt: skip
        session.commit()
        return None
    price = current_price(ctx, position.market, position.symbol)
    quantity = holding
    if position.market == "spot" and position.side == "BUY":
        quantity = min(quantity, ctx.client.account().free(rules.base_asset))
    seen = position.bracket_gen or 0
    generation = seen + 1
    intent = plan_market_close(
        key=bracket_key(position.id), leg=f"{STOP_OUT_LEG}{generation}", market=position.market,
        symbol=position.symbol, side=closing_side(position.side), quantity=quantity,
        rules=rules, price=price,
    )  # fmt: skip
    if isinstance(intent, NotProtected):
        note(session, position, f"{why}; cannot close: {intent.note}", unprotected=True)
        return None
    if not _claim_generation(session, position, seen, generation):
        return None  # another placer acts on this position right now; the next pass looks
    (row,) = add_orders(session, [intent], signal_id=position.opened_by, position_id=position.id,
                        now=ctx.clock.now())  # fmt: skip
    event(session, "stop_out", why, signal_id=position.opened_by, position_id=position.id,
          quantity=str(intent.quantity))  # fmt: skip
    session.commit()
    try:
        placed = place(ctx, row.id, claim)
    except OrderRejected as exc:
        note(session, position, f"{why}; the close was rejected: {exc.msg} (code {exc.code})",
             unprotected=True)  # fmt: skip
        return None
    session.refresh(position)
    apply_exit_fills(session, position, now=ctx.clock.now(), dust=dust)
    if placed.status != OrderStatus.WORKING.value:  # a working close is followed until it ends
        exit_filled(session, placed, position)
    session.commit()
    return placed
