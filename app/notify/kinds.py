"""Which events are worth a notification, and under which name. Pure: no I/O.

The names are what ``PACEKEEPER_NOTIFY_EVENTS`` filters on:

- ``refused``: a signal accepted with 202 that Pacekeeper then declined (a guard, a filter,
  the kill switch, or its expiry passed before anything was sent);
- ``failed``: a signal accepted with 202 that the exchange rejected, or that could not be
  placed (gave up after repeated temporary errors, an algo the exchange expired unfilled);
- ``entry_filled``: an entry order ended with something filled;
- ``bracket_placed``: a position's take-profit/stop-loss orders are live on the exchange;
- ``unprotected``: a position Pacekeeper could not protect;
- ``stop_out``: a position closed at market because a level was already crossed;
- ``pace_cancel``: the monitor cancelled a TWAP/VP behind its schedule (or past its signal's
  expiry): what filled, and that the remainder was cancelled;
- ``exit``: an order that closes a position executed, with the realised PnL;
- ``halted`` / ``resumed``: the kill switch;
- ``component_down`` / ``component_up``: a component of ``/health/ready`` changed state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOTIFY_KINDS: tuple[str, ...] = (
    "refused",
    "failed",
    "entry_filled",
    "bracket_placed",
    "unprotected",
    "stop_out",
    "pace_cancel",
    "exit",
    "halted",
    "resumed",
    "component_down",
    "component_up",
)

# Event kind -> notification kind, for the kinds that map one to one.
_BY_EVENT_KIND = {
    "refused": "refused",
    "failed": "failed",
    "entry_filled": "entry_filled",
    "bracket_placed": "bracket_placed",
    "unprotected": "unprotected",
    "stop_out": "stop_out",
    "exit": "exit",
    "halt": "halted",
    "resume": "resumed",
}
# Causes of a monitor cancel (``Order.extra["monitor_cancel"]``) that are the monitor's own.
MONITOR_CAUSES = frozenset({"pace", "expiry"})


def notification_kind(
    kind: str, data: Mapping[str, Any] | None, *, order_id: int | None
) -> str | None:
    """The notification an event of ``kind`` (with its ``data``) is, or None."""
    data = data or {}
    mapped = _BY_EVENT_KIND.get(kind)
    if mapped is not None:
        return mapped
    if kind == "expired" and order_id is None:
        # A signal-level expiry: it expired while queued, before anything was sent (an order
        # that expired is recorded with its order id, and its signal ends as it may).
        return "refused"
    if kind == "state" and data.get("cause") in MONITOR_CAUSES:
        # The end of an algo the monitor cancelled: what filled, what was cancelled.
        return "pace_cancel"
    if kind == "component":
        return "component_up" if data.get("ok") else "component_down"
    return None


def parse_kinds(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """``PACEKEEPER_NOTIFY_EVENTS``: comma-separated names (or ``all``), in canonical order;
    ValueError naming an unknown one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {item.strip().lower() for item in items if item.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(NOTIFY_KINDS)
    unknown = sorted(names - set(NOTIFY_KINDS))
    if unknown:
        raise ValueError(
            f"unknown notification event(s) {', '.join(unknown)}; "
            f"known: {', '.join(NOTIFY_KINDS)} (or all)"
        )
    return [kind for kind in NOTIFY_KINDS if kind in names]
