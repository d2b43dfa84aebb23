"""Delivery through Apprise to a JSON webhook over real HTTP: retries with backoff, one
delivery per target, leases and fences, cooldowns of a failing target, filters, and never a
secret in what is sent. Each run is driven directly with its ``now``: nothing waits."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.config import Settings
from app.execution.journal import event
from app.models import Notification, NotificationStatus, utcnow
from app.notify.messages import Message
from app.notify.service import LEASE, Cooldowns, DeliveryReport, deliver
from app.notify.targets import AppriseSender, Target
from tests.conftest import TEST_ADMIN_TOKEN, TEST_WEBHOOK_SECRET
from tests.notify.receiver import Receiver, receiving

S = timedelta(seconds=1)


def run(
    sessions: sessionmaker[Session], settings: Settings, now: datetime, cooldowns: Cooldowns
) -> DeliveryReport:
    return deliver(sessions, settings, now=now, cooldowns=cooldowns)


def notify(sessions: sessionmaker[Session], kind: str, message: str) -> None:
    with sessions() as session:
        event(session, kind, message)
        session.commit()


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_a_halt_arrives_as_a_json_webhook(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    with sessions() as session:
        controls.halt(session, reason="exchange maintenance", by="admin-api")
        session.commit()
    assert receiver.requests == []  # writing it sent nothing

    report = run(sessions, notify_settings, utcnow(), Cooldowns())

    assert (report.claimed, report.sent) == (1, 1)
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["Content-Type"] == "application/json"
    message = request.json
    assert message["title"] == "[pacekeeper] Trading halted"
    assert message["type"] == "warning"
    assert message["message"].startswith("halted by admin-api: exchange maintenance\n")
    assert "New entries are refused" in message["message"]
    (row,) = rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None and row.delivered and len(row.delivered) == 1
    assert run(sessions, notify_settings, utcnow(), Cooldowns()).claimed == 0  # sent once


def test_a_refused_answer_is_retried_with_backoff_until_accepted(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    notify(sessions, "refused", "trading is halted: maintenance")
    receiver.answer(500)
    cooldowns, now = Cooldowns(), utcnow()

    first = run(sessions, notify_settings, now, cooldowns)

    assert (first.claimed, first.retrying) == (1, 1)
    (row,) = rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "#1 json: not accepted")
    # Not due again before its backoff (5 s after a first failure), and the target cools too.
    assert run(sessions, notify_settings, now + 4 * S, cooldowns).claimed == 0
    assert len(receiver.requests) == 1

    second = run(sessions, notify_settings, now + 5 * S, cooldowns)

    assert second.sent == 1
    assert len(receiver.requests) == 2 and receiver.messages[0] == receiver.messages[1]
    (row,) = rows(sessions)
    assert (row.status, row.attempts) == ("sent", 2)


def test_the_backoff_doubles_and_the_row_fails_after_the_last_attempt(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    settings = notify_settings.model_copy(update={"notify_max_attempts": 3})
    notify(sessions, "failed", "rejected by the exchange: Account has insufficient balance")
    receiver.answer(503, 503, 503, 503)
    cooldowns, now = Cooldowns(), utcnow()

    run(sessions, settings, now, cooldowns)
    assert rows(sessions)[0].due_at.replace(tzinfo=None) == (now + 5 * S).replace(tzinfo=None)
    run(sessions, settings, now + 5 * S, cooldowns)
    assert rows(sessions)[0].due_at.replace(tzinfo=None) == (now + 15 * S).replace(tzinfo=None)
    last = run(sessions, settings, now + 15 * S, cooldowns)

    assert last.failed == 1
    (row,) = rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "#1 json: not accepted")
    assert run(sessions, settings, now + 1000 * S, cooldowns).claimed == 0
    assert len(receiver.requests) == 3


def test_each_target_hears_a_notification_once_when_another_target_fails(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    with receiving() as flaky:
        urls = f"{receiver.url()}, {flaky.url(path='/other')}"
        two = settings.model_copy(update={"notify_urls": SecretStr(urls)})
        notify(sessions, "unprotected", "unprotected: bracket rejected: MAX_NUM_ALGO_ORDERS")
        flaky.answer(500)
        cooldowns, now = Cooldowns(), utcnow()

        first = run(sessions, two, now, cooldowns)
        (row,) = rows(sessions)
        assert first.retrying == 1 and row.last_error == "#2 json: not accepted"
        second = run(sessions, two, now + 5 * S, cooldowns)

        assert second.sent == 1
        assert len(receiver.requests) == 1  # not sent again to the target that took it
        assert len(flaky.requests) == 2
        assert receiver.messages[0] == flaky.messages[1]


def test_a_failing_target_is_asked_once_per_cooldown_not_once_per_row(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    for n in range(3):
        notify(sessions, "unprotected", f"position {n}: unprotected")
    receiver.answer(500, 500)
    cooldowns, now = Cooldowns(), utcnow()

    first = run(sessions, notify_settings, now, cooldowns)

    assert len(receiver.requests) == 1
    assert (first.retrying, first.released) == (1, 2)
    assert [r.attempts for r in rows(sessions)] == [1, 0, 0]  # nothing tried: no attempt spent
    # While the target cools down a run claims nothing and sends nothing.
    assert run(sessions, notify_settings, now + 4 * S, cooldowns) == DeliveryReport()
    assert len(receiver.requests) == 1

    again = run(sessions, notify_settings, now + 5 * S, cooldowns)  # fails again: 10 s now

    assert len(receiver.requests) == 2 and again.retrying == 1
    assert run(sessions, notify_settings, now + 14 * S, cooldowns).claimed == 0
    done = run(sessions, notify_settings, now + 15 * S, cooldowns)
    assert done.sent == 3 and len(receiver.requests) == 5


def test_a_claimed_row_waits_for_its_lease_then_another_run_takes_it_over(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    notify(sessions, "stop_out", "stop-out: stop 60000 crossed (last 59000)")
    now = utcnow()
    with sessions() as session:  # a run claimed it, then its worker died mid-send
        session.execute(
            update(Notification).values(status="sending", attempts=1, lease_until=now + LEASE)
        )
        session.commit()

    assert run(sessions, notify_settings, now + LEASE - S, Cooldowns()).claimed == 0
    assert receiver.requests == []
    taken = run(sessions, notify_settings, now + LEASE, Cooldowns())

    assert taken.sent == 1 and len(receiver.requests) == 1
    (row,) = rows(sessions)
    assert (row.status, row.attempts, row.lease_until) == ("sent", 2, None)


class TakenOverMidSend:
    """Sends for real, then another run takes the row over (as after an expired lease)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions, self.sender = sessions, AppriseSender()

    def send(self, target: Target, message: Message) -> str | None:
        answer = self.sender.send(target, message)
        with self.sessions() as session:
            session.execute(update(Notification).values(attempts=Notification.attempts + 1))
            session.commit()
        return answer


def test_a_run_whose_claim_was_taken_over_does_not_overwrite_the_new_claim(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    notify(sessions, "exit", "oco exit: 0.00999 at 70000; realised PnL 49.95; position closed")

    report = deliver(
        sessions, notify_settings, sender=TakenOverMidSend(sessions), cooldowns=Cooldowns()
    )

    assert report.sent == 1 and len(receiver.requests) == 1
    (row,) = rows(sessions)
    # The newer claim (attempt 2) still holds the row: the old run's outcome was fenced out.
    assert (row.status, row.attempts, row.delivered) == ("sending", 2, None)


def test_kinds_left_out_of_notify_events_are_skipped(
    sessions: sessionmaker[Session], notify_settings: Settings, receiver: Receiver
) -> None:
    settings = notify_settings.model_copy(update={"notify_events": ["refused", "exit"]})
    notify(sessions, "refused", "max_notional_per_signal exceeded")
    notify(sessions, "unprotected", "unprotected: too small to protect")

    report = run(sessions, settings, utcnow(), Cooldowns())

    assert (report.skipped, report.sent) == (1, 1)
    assert receiver.titles() == ["[pacekeeper] Signal refused:"]
    skipped = rows(sessions)[1]
    assert (skipped.status, skipped.last_error) == ("skipped", "not in PACEKEEPER_NOTIFY_EVENTS")


def test_without_notify_urls_nothing_is_sent_and_nothing_piles_up(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    notify(sessions, "refused", "trading is halted: maintenance")

    report = run(sessions, settings, utcnow(), Cooldowns())

    assert (report.skipped, report.claimed) == (1, 0)
    (row,) = rows(sessions)
    assert (row.status, row.last_error) == (
        NotificationStatus.SKIPPED.value,
        "no PACEKEEPER_NOTIFY_URLS",
    )


def test_no_configured_secret_appears_in_any_delivered_message(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    api_key, api_secret = "canary-api-key-" + "k" * 40, "canary-api-secret-" + "s" * 40
    url_password, url_token = "canary-url-password-123", "canary-path-token-456"
    secured = settings.model_copy(
        update={
            "binance_api_key": SecretStr(api_key),
            "binance_api_secret": SecretStr(api_secret),
            "notify_urls": SecretStr(
                receiver.url(credentials=f"pacekeeper:{url_password}", path=f"/{url_token}")
            ),
        }
    )
    secrets = [TEST_WEBHOOK_SECRET, TEST_ADMIN_TOKEN, api_key, api_secret, url_password, url_token]
    # Whatever an event carries (an exception text, an operator's reason) goes through the
    # same scrub before it is sent.
    notify(sessions, "failed", f"rejected: bad key {api_key} / {api_secret}")
    notify(sessions, "refused", f"webhook secret {TEST_WEBHOOK_SECRET} pasted in a reason")
    with sessions() as session:
        controls.halt(session, reason=f"token {TEST_ADMIN_TOKEN}", by="admin-api")
        event(
            session, "unprotected", f"posted to json://pacekeeper:{url_password}@host/{url_token}"
        )
        session.commit()

    report = run(sessions, secured, utcnow(), Cooldowns())

    assert report.sent == 4 and len(receiver.requests) == 4
    for request in receiver.requests:
        assert request.path == f"/{url_token}"  # the token reached its service, in the URL
        for secret in secrets:
            assert secret not in request.body, secret
    assert all("[REDACTED]" in r.json["message"] for r in receiver.requests)
