"""Whose turn it is: a signal runs only once every earlier signal of its strategy, market and
symbol has settled, so an exit never overtakes the entry it closes.

Workers run many signals at once (``worker.main``). Signals on different symbols, or from
different strategies, are independent and go out together; two signals of one strategy on
one symbol are not: an exit taken before its entry finds no position (and is refused, or
sells coins nothing bought), a new stop-loss applied before the entry that it amends is
lost. "Earlier" is the order of arrival (``received_at``, then id). "Settled" is anything
but ``received``/``queued``/``processing``: a ``working`` entry (a live TWAP) has been
placed, and what follows it (an exit that stops it) is the next step on purpose.

Turns are per account: signals of one strategy on one symbol in two accounts do not wait for
each other (a fan-out parent, whose children are not written yet, counts for every account,
and does not wait itself: its children do).

A ``cancel`` signal does not wait: it is meant to overtake what is queued before it (it
cancels queued signals of its strategy and symbol before they run). Later signals do wait
for it.

One edge is left to the senders: two alerts that arrive within the same few milliseconds
on two receivers are ordered by their ``received_at`` only once both are stored; the later
one may be taken before the earlier is committed. Alerts of one strategy that close each
other are not sent that close together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from app.accounts import FANOUT
from app.execution.claims import CLAIM_COLUMNS
from app.models import Signal as SignalRow
from app.models import SignalStatus
from app.signals.schemas import Action

UNSETTLED = (
    SignalStatus.RECEIVED.value,
    SignalStatus.QUEUED.value,
    SignalStatus.PROCESSING.value,
)


TURN_COLUMNS = (
    SignalRow.action,
    SignalRow.market,
    SignalRow.symbol,
    SignalRow.strategy,
    SignalRow.received_at,
    SignalRow.account,
)


# Built once (every job runs them): only their parameters change. The turn's read carries
# the claim's columns too: the claim that follows reads them from this row.
_READ_TURN = select(*TURN_COLUMNS, *CLAIM_COLUMNS).where(SignalRow.id == bindparam("signal_id"))


def _waiting_for(same_strategy: Any) -> Select[Any]:
    return (
        select(SignalRow.id)
        .where(
            SignalRow.status.in_(UNSETTLED),
            SignalRow.symbol == bindparam("symbol"),
            SignalRow.market == bindparam("market"),
            same_strategy,
            # Accounts are independent; a signal still to fan out may concern any of them.
            SignalRow.account.in_((bindparam("account"), FANOUT)),
            SignalRow.id != bindparam("signal_id"),
            or_(
                SignalRow.received_at < bindparam("received_at"),
                and_(
                    SignalRow.received_at == bindparam("received_at"),
                    SignalRow.id < bindparam("signal_id"),
                ),
            ),
        )
        .order_by(SignalRow.received_at, SignalRow.id)
        .limit(1)
    )


_WAITING_FOR = _waiting_for(SignalRow.strategy == bindparam("strategy"))
_WAITING_FOR_NO_STRATEGY = _waiting_for(SignalRow.strategy.is_(None))


def read_turn(session: Session, signal_id: str) -> Row[Any] | None:
    """The signal's columns its turn depends on, and its claim's (``claims.CLAIM_COLUMNS``),
    in one SELECT; None for a signal that does not exist."""
    return session.execute(_READ_TURN, {"signal_id": signal_id}).first()


def waiting_for(session: Session, signal_id: str, me: Row[Any] | None) -> str | None:
    """The id of the earliest unsettled signal that must run before ``signal_id`` (``me``:
    its :func:`read_turn`), if any."""
    if me is None or me.action == Action.CANCEL.value or me.account == FANOUT:
        return None
    return session.scalars(
        _WAITING_FOR_NO_STRATEGY if me.strategy is None else _WAITING_FOR,
        {
            "symbol": me.symbol,
            "market": me.market,
            "strategy": me.strategy,
            "account": me.account,
            "signal_id": signal_id,
            "received_at": me.received_at,
        },
    ).first()
