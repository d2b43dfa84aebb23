"""component_down / component_up: a component of /health/ready that reads otherwise on two
checks in a row is a notification; one odd reading is not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.healthcheck import Check
from app.models import Event, utcnow
from app.notify.components import judge, watch
from app.notify.service import Cooldowns, deliver
from tests.notify.receiver import Receiver

DOWN = Check("exchange", False, "unreachable: ConnectError")
UP = Check("exchange", True, "reachable, clock offset 3 ms")


def test_one_odd_reading_changes_nothing_two_in_a_row_do() -> None:
    state, changes = judge({}, {"exchange": (False, "unreachable")})
    assert changes == [] and state["exchange"] == {"ok": True, "streak": 1}
    back, changes = judge(state, {"exchange": (True, "reachable")})
    assert changes == [] and back["exchange"] == {"ok": True, "streak": 0}  # the streak broke

    state, _ = judge(back, {"exchange": (False, "unreachable")})
    state, changes = judge(state, {"exchange": (False, "banned")})
    assert [(c.component, c.ok, c.detail) for c in changes] == [("exchange", False, "banned")]
    assert state["exchange"] == {"ok": False, "streak": 0}
    state, changes = judge(state, {"exchange": (False, "banned")})
    assert changes == []  # still down: told once


def test_a_component_going_down_and_up_is_notified_once_each(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    now = utcnow()
    # The kill switch and protection never fail readiness: never watched.
    readings = [DOWN, Check("kill_switch", True, "halted"), Check("protection", True, "1")]
    for step in range(3):
        watch(sessions, readings, now=now + timedelta(seconds=30 * step))
    for step in range(3, 5):
        watch(sessions, [UP], now=now + timedelta(seconds=30 * step))

    with sessions() as session:
        events = list(session.scalars(select(Event).where(Event.kind == "component")))
    assert [e.message for e in events] == [
        "exchange down: unreachable: ConnectError",
        "exchange up: reachable, clock offset 3 ms",
    ]
    report = deliver(sessions, notify_settings, cooldowns=Cooldowns())

    assert report.sent == 2
    down, up = receiver.messages
    assert (down["title"], down["type"]) == ("[pacekeeper] Component down: exchange", "failure")
    assert down["message"].startswith("exchange down: unreachable: ConnectError\n")
    assert (up["title"], up["type"]) == ("[pacekeeper] Component up: exchange", "success")
