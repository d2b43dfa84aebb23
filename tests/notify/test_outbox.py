"""The outbox: a notifiable event and its notification are written in one transaction, and
the kinds map to the names PACEKEEPER_NOTIFY_EVENTS filters on."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.execution.journal import event
from app.models import Event, Notification, NotificationStatus
from app.notify.kinds import NOTIFY_KINDS, notification_kind, parse_kinds


def notifications(sessions: sessionmaker[Session]) -> list[tuple[str, str, int]]:
    with sessions() as session:
        rows = session.execute(
            select(Notification.kind, Notification.status, Notification.event_id).order_by(
                Notification.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_a_notifiable_event_and_its_notification_commit_or_roll_back_together(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        event(session, "refused", "trading is halted: maintenance")
        session.flush()
        session.rollback()
    assert notifications(sessions) == []

    with sessions() as session:
        event(session, "refused", "trading is halted: maintenance")
        event(session, "sent", "sending market BUY BTCUSDT")  # history only
        session.commit()
        refused = session.scalars(select(Event.id).where(Event.kind == "refused")).one()

    assert notifications(sessions) == [("refused", NotificationStatus.PENDING.value, refused)]


def test_halting_and_resuming_are_notified(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        controls.halt(session, reason="exchange maintenance", by="admin-api")
        session.commit()
        controls.halt(session, reason="again", by="admin-api")  # already halted: no event
        session.commit()
        controls.resume(session, by="admin-api")
        session.commit()

    assert [kind for kind, _, _ in notifications(sessions)] == ["halted", "resumed"]


@pytest.mark.parametrize(
    ("kind", "data", "order_id", "expected"),
    [
        ("refused", None, None, "refused"),
        ("expired", None, None, "refused"),  # expired while queued: never sent
        ("expired", None, 7, None),  # a resting order that expired: its signal says the rest
        ("failed", None, 7, "failed"),
        ("entry_filled", None, 7, "entry_filled"),
        ("bracket_placed", None, 7, "bracket_placed"),
        ("bracket", None, None, None),  # a bracket being written, not yet live
        ("unprotected", None, None, "unprotected"),
        ("stop_out", None, None, "stop_out"),
        ("state", {"cause": "pace"}, 7, "pace_cancel"),
        ("state", {"cause": "expiry"}, 7, "pace_cancel"),
        ("state", {"cause": "operator"}, 7, None),  # the operator's own cancel
        ("state", {"cause": None}, 7, None),
        ("pace", {"cause": "pace"}, 7, None),  # the decision; its outcome is notified
        ("exit", None, 7, "exit"),
        ("halt", None, None, "halted"),
        ("resume", None, None, "resumed"),
        ("component", {"ok": False}, None, "component_down"),
        ("component", {"ok": True}, None, "component_up"),
        ("monitor_error", None, None, None),
    ],
)
def test_event_kinds_map_to_notification_kinds(
    kind: str, data: dict[str, object] | None, order_id: int | None, expected: str | None
) -> None:
    assert notification_kind(kind, data, order_id=order_id) == expected


def test_notify_events_parse_as_known_names_in_canonical_order() -> None:
    assert parse_kinds(" exit,REFUSED ,exit") == ["refused", "exit"]
    assert parse_kinds("all") == list(NOTIFY_KINDS)
    assert parse_kinds("") == []
    with pytest.raises(ValueError, match=r"unknown notification event.*filled"):
        parse_kinds("exit,filled")
