"""An operator's cancel of a working algo (the admin API's cancel and halt), beside the monitor's.

It takes the same two steps as the monitor's own cancels (``service.Monitor``): first the
decision is written (an event whose kind is the cause, ``operator`` or ``halt``, and
``monitor_cancel`` in the order's ``extra``), then the exchange is asked. The order's status
is left to the monitor: its next cycle sees the algo ended, records the fills and brackets
what did fill, as for any other cancel. An algo that already ended answers ``already_done``;
an exchange failure raises :class:`ExchangeFailed` and can simply be retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from app.errors import AppError, Conflict, NotFound
from app.exchange import AlreadyDone, BinanceClient, ExchangeError
from app.exchange.filters import Market
from app.models import ALGO_KINDS, Event, Order, OrderStatus

log = logging.getLogger(__name__)


class ExchangeFailed(AppError):
    """The exchange did not confirm a cancel; nothing changed here, so retrying is safe."""

    status_code = 502
    code = "exchange_error"
    default_message = "the exchange did not confirm the cancel; try again"


@dataclass(frozen=True)
class Cancelled:
    """What became of one operator cancel."""

    order_id: int
    result: Literal["cancelled", "already_done"]
    detail: str


def cancel_algo(
    session: Session,
    client: BinanceClient,
    order_id: int,
    *,
    cause: str,
    reason: str,
    by: str,
    now: datetime,
) -> Cancelled:
    """Record the decision (``cause``, ``reason``, ``by``, taken at ``now``), then ask the
    exchange to cancel; see the module docstring."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.kind not in ALGO_KINDS:
        raise Conflict(f"order {order_id} is a {order.kind} order, not a TWAP or VP algo")
    if OrderStatus(order.status).terminal:
        return Cancelled(order_id=order_id, result="already_done", detail=f"already {order.status}")
    if order.venue_id is None and order.status != OrderStatus.WORKING:
        raise Conflict(f"order {order_id} is {order.status}: not confirmed on the exchange yet")
    if "monitor_cancel" not in (order.extra or {}):
        decision = {"cause": cause, "reason": reason, "by": by, "at": now.isoformat()}
        order.extra = {**(order.extra or {}), "monitor_cancel": decision}
        session.add(
            Event(
                signal_id=order.signal_id,
                order_id=order.id,
                kind=cause,
                message=f"cancelling: {reason}",
                data=decision,
            )
        )
        session.commit()
    market = Market(order.market)
    try:
        algo_id = order.venue_id
        if algo_id is None:
            found = client.find_algo(market, order.client_id, symbol=order.symbol)
            if found is None:
                raise Conflict(f"order {order_id} is not on the exchange (yet)")
            algo_id = found.algoId
        client.cancel_algo(market, algo_id)
    except AlreadyDone:
        return Cancelled(order_id=order_id, result="already_done", detail="the algo had ended")
    except ExchangeError as exc:
        log.warning("admin cancel of order %s failed: %s", order_id, exc)
        raise ExchangeFailed(
            f"the exchange did not confirm the cancel ({exc}); try again"
        ) from None
    log.info("order %s cancelled by an operator: %s", order_id, reason)
    return Cancelled(
        order_id=order_id, result="cancelled", detail="cancelled; the monitor records the fills"
    )
