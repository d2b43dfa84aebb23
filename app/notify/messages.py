"""What a notification says: a short title and body a trader can read at a glance. Pure.

Built from the event (its message and data) and, when the event belongs to one, the signal
and order it is about; with several accounts configured the title names the account. The
caller removes every configured secret from the result (``service.scrub``), whatever the
event carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.accounts import ALL_ACCOUNTS

# Apprise's notify types: how a service may colour or prefix the message.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

LEVELS = {
    "refused": FAILURE,
    "failed": FAILURE,
    "entry_filled": SUCCESS,
    "bracket_placed": INFO,
    "unprotected": WARNING,
    "stop_out": WARNING,
    "pace_cancel": WARNING,
    "exit": SUCCESS,
    "halted": WARNING,
    "resumed": INFO,
    "component_down": FAILURE,
    "component_up": SUCCESS,
}


@dataclass(frozen=True)
class Facts:
    """One notification's event, with the signal and order it is about (when it has them)."""

    kind: str  # app.notify.kinds.NOTIFY_KINDS
    message: str  # the event's message
    created_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    signal_ref: str | None = None  # the sender's id, else ours
    action: str | None = None
    strategy: str | None = None
    symbol: str | None = None
    side: str | None = None
    market: str | None = None
    order_kind: str | None = None
    # The named account it is about ("alt, third": a signal for several; "all": the kill
    # switch of every account); None in a deployment with one key (nothing to tell).
    account: str | None = None


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str  # info, success, warning, failure


def render(facts: Facts) -> Message:
    """The notification for ``facts``."""
    data = facts.data
    what = " ".join(p for p in (_side(facts.side), facts.symbol) if p)
    text = facts.message
    if facts.kind == "refused":
        title = f"Signal refused: {_join(facts.action, what)}"
        text = f"Accepted (202), then refused: {text}"
    elif facts.kind == "failed":
        title = f"Signal failed: {_join(facts.action, what)}"
        text = f"Accepted (202), then failed: {text}"
    elif facts.kind == "entry_filled":
        title = f"Entry filled: {_join(what, data.get('executed_qty'))}"
    elif facts.kind == "bracket_placed":
        title = f"Bracket placed: {facts.symbol or ''}".rstrip()
    elif facts.kind == "unprotected":
        title = f"UNPROTECTED position: {facts.symbol or ''}".rstrip()
    elif facts.kind == "stop_out":
        title = f"Stop-out: {facts.symbol or ''}".rstrip()
    elif facts.kind == "pace_cancel":
        title = f"Pace cancel: {_join(facts.order_kind and facts.order_kind.upper(), what)}"
        text += _remainder(data)
    elif facts.kind == "exit":
        pnl = data.get("realized_pnl")
        title = f"Exit filled: {_join(what, data.get('executed_qty'))}"
        if pnl is not None:
            title += f", realised PnL {_signed(pnl)}"
    elif facts.kind == "halted":
        title = "Trading halted"
        text += "\nNew entries are refused; exits, cancels and protection keep running."
    elif facts.kind == "resumed":
        title = "Trading resumed"
    elif facts.kind == "component_down":
        title = f"Component down: {data.get('component', '?')}"
    elif facts.kind == "component_up":
        title = f"Component up: {data.get('component', '?')}"
    else:
        title = facts.kind
    if facts.account == ALL_ACCOUNTS:
        title += " (every account)"
    elif facts.account:
        title += f" (account{'s' if ',' in facts.account else ''} {facts.account})"
    footer = ", ".join(
        p
        for p in (
            f"signal {facts.signal_ref}" if facts.signal_ref else None,
            f"strategy {facts.strategy}" if facts.strategy else None,
            facts.market,
            _when(facts.created_at),
        )
        if p
    )
    return Message(f"[pacekeeper] {title}", f"{text}\n{footer}", LEVELS.get(facts.kind, INFO))


def _side(side: str | None) -> str | None:
    return side.upper() if side else None


def _join(*parts: object) -> str:
    return " ".join(str(p) for p in parts if p)


def _number(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _signed(value: object) -> str:
    number = _number(value)
    if number is None:
        return str(value)
    return f"{'+' if number > 0 else ''}{number.normalize():f}"


def _remainder(data: Mapping[str, Any]) -> str:
    """What the monitor's cancel did to the part that had not filled."""
    total, executed = _number(data.get("total")), _number(data.get("executed_qty"))
    if total is None or executed is None or executed >= total:
        return ""
    return f"; the remaining {(total - executed).normalize():f} was cancelled"


def _when(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
