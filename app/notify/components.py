"""``component_down`` / ``component_up``: the components of ``/health/ready``, watched.

The ``watch_components`` job runs the readiness checks every
``PACEKEEPER_COMPONENT_CHECK_INTERVAL`` seconds and keeps each component's reported state in
the ``controls`` row ``components``. A component that reads otherwise on ``CONFIRM``
consecutive checks changes state, recorded as a ``component`` event (a notification) in the
transaction that stores the new state; one odd reading (a slow answer) tells nobody.

Only faults are watched: the kill switch and protection never fail readiness (a halt and an
unprotected position have notifications of their own). What the watcher itself runs on
cannot be reported while it is down: with the database down no event can be written, and
with Redis down no job runs, so those two are reported once they are back, if at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.healthcheck import Check
from app.models import Control, Event

STATE_KEY = "components"
WATCHED = ("database", "redis", "queue", "workers", "monitor", "exchange")
CONFIRM = 2  # consecutive readings that change a component's state


@dataclass(frozen=True)
class Change:
    component: str
    ok: bool
    detail: str


def judge(
    state: Mapping[str, Any], readings: Mapping[str, tuple[bool, str]]
) -> tuple[dict[str, Any], list[Change]]:
    """The new state and the changes it confirms. ``state``: component -> ``{"ok", "streak"}``
    (an unknown component counts as up). Pure."""
    out = dict(state)
    changes = []
    for name, (ok, detail) in readings.items():
        known = state.get(name) or {"ok": True, "streak": 0}
        if ok == known["ok"]:
            out[name] = {"ok": ok, "streak": 0}
            continue
        streak = int(known.get("streak", 0)) + 1
        if streak >= CONFIRM:
            out[name] = {"ok": ok, "streak": 0}
            changes.append(Change(name, ok, detail))
        else:
            out[name] = {"ok": known["ok"], "streak": streak}
    return out, changes


def watch(
    sessions: sessionmaker[Session], checks: Iterable[Check], *, now: datetime
) -> list[Change]:
    """Record one reading of the components; returns the state changes it confirmed."""
    readings = {c.name: (c.ok, c.detail) for c in checks if c.name in WATCHED}
    with session_scope(sessions) as session:
        # The row lock (PostgreSQL; SQLite's writer lock is taken at BEGIN) keeps two
        # watchers from both confirming one change.
        row = session.scalars(
            select(Control).where(Control.key == STATE_KEY).with_for_update()
        ).first()
        state, changes = judge(row.value if row is not None else {}, readings)
        if row is None:
            session.add(Control(key=STATE_KEY, value=state))
        else:
            row.value = state
        for change in changes:
            word = "up" if change.ok else "down"
            session.add(
                Event(
                    kind="component",
                    message=f"{change.component} {word}: {change.detail}",
                    data={"component": change.component, "ok": change.ok},
                    created_at=now,
                )
            )
    return changes
