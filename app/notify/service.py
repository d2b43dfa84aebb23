"""Deliver the outbox: claim what is due, render it, send it through Apprise, record how it went.

One run (the ``deliver_notifications`` job, every ``PACEKEEPER_NOTIFY_INTERVAL`` seconds, on a
queue workers take only after the signals' queue):

1. rows whose kind ``PACEKEEPER_NOTIFY_EVENTS`` leaves out, and every row while no
   ``PACEKEEPER_NOTIFY_URLS`` is set, end ``skipped`` (so turning notifications on later
   does not replay old ones);
2. up to ``BATCH`` due rows are claimed: ``pending`` whose ``due_at`` has come, or
   ``sending`` whose lease has run out (the run that claimed it died). The claim is a
   compare-and-set that bumps ``attempts`` (the row's fence) and sets ``lease_until``, and
   it is committed before any request: no transaction is held across one;
3. each row goes to every target that has not accepted it yet (``delivered``), except
   targets cooling down after a failure (:class:`Cooldowns`): a dead service costs one
   timeout per cooldown, not one per row, and a run stops sending after ``RUN_BUDGET``;
4. the outcome is written with the fence: ``sent`` once every target accepted it; else
   ``pending`` again at ``now + backoff(attempts)`` (``BACKOFF_BASE`` doubling up to
   ``BACKOFF_MAX``), or ``failed`` after ``PACEKEEPER_NOTIFY_MAX_ATTEMPTS``. A row nothing
   was tried for (its targets cooling, or the budget spent) is released without spending
   an attempt.

Delivery is at least once: a run that dies between a target's answer and step 4 leaves the
row to be claimed again when its lease runs out, and that target hears it twice. Two runs
never send the same row at once (the claim), and a late run cannot overwrite a newer one's
outcome (the fence).

Execution never calls any of this: it only wrote the row, in its event's transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.accounts import ALL_ACCOUNTS, FANOUT, account_names
from app.config import Settings
from app.db import session_scope
from app.logging import Redactor, settings_secrets
from app.models import Event, Notification, NotificationStatus, Order, utcnow
from app.models import Signal as SignalRow
from app.notify.messages import Facts, Message, render
from app.notify.targets import AppriseSender, Target, targets_of

log = logging.getLogger(__name__)

BATCH = 20  # rows one run claims
LEASE = timedelta(seconds=120)  # a claim outlives a run (RUN_BUDGET plus one slow request)
RUN_BUDGET = 30.0  # seconds of sending per run; the RQ job's timeout is 60 s
BACKOFF_BASE = 5.0  # seconds before the first retry of a row, and of a failed target
BACKOFF_MAX = 300.0

PENDING = NotificationStatus.PENDING.value
SENDING = NotificationStatus.SENDING.value


def backoff(failures: int) -> timedelta:
    """The wait after the ``failures``-th failure in a row: 5 s, 10 s, 20 s ... 300 s."""
    return timedelta(seconds=min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(failures - 1, 0)))


class Sender(Protocol):
    def send(self, target: Target, message: Message) -> str | None: ...


@dataclass
class Cooldowns:
    """Targets that failed recently, not tried again until their backoff has passed. One per
    process (the worker's), so a dead service is not asked again by every run."""

    _failures: dict[str, int] = field(default_factory=dict)
    _until: dict[str, datetime] = field(default_factory=dict)

    def cooling(self, target: Target, now: datetime) -> bool:
        until = self._until.get(target.id)
        return until is not None and now < until

    def failed(self, target: Target, now: datetime) -> None:
        self._failures[target.id] = self._failures.get(target.id, 0) + 1
        self._until[target.id] = now + backoff(self._failures[target.id])

    def succeeded(self, target: Target) -> None:
        self._failures.pop(target.id, None)
        self._until.pop(target.id, None)


COOLDOWNS = Cooldowns()


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0  # claimed but nothing tried (targets cooling, budget spent)
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Claimed:
    id: int
    fence: int
    delivered: list[str]
    message: Message


def scrubber(settings: Settings) -> Redactor:
    """Removes every configured secret (and anything shaped like one) from message text."""
    return Redactor(settings_secrets(settings))


def deliver(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime | None = None,
    sender: Sender | None = None,
    cooldowns: Cooldowns | None = None,
    budget: float = RUN_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryReport:
    """One delivery run (see the module docstring)."""
    now = now or utcnow()
    sender = sender or AppriseSender()
    cooldowns = COOLDOWNS if cooldowns is None else cooldowns
    targets = targets_of(settings)
    report = DeliveryReport()
    with session_scope(sessions) as session:
        report.skipped = _skip(session, settings, targets, now)
        if not [t for t in targets if not cooldowns.cooling(t, now)]:
            return report  # nothing could be sent now: leave the rows due
        named = len(account_names(settings)) > 1
        claimed = _claim(session, now, scrubber(settings), named=named)
    report.claimed = len(claimed)
    started = clock()
    outcomes: list[tuple[_Claimed, list[str], list[str]]] = []
    for row in claimed:
        accepted: list[str] = []
        errors: list[str] = []
        if clock() - started < budget:
            for target in targets:
                if target.id in row.delivered or cooldowns.cooling(target, now):
                    continue
                error = sender.send(target, row.message)
                if error is None:
                    cooldowns.succeeded(target)
                    accepted.append(target.id)
                else:
                    log.warning("notification %s not delivered: %s", row.id, error)
                    cooldowns.failed(target, now)
                    errors.append(error)
        outcomes.append((row, accepted, errors))
    with session_scope(sessions) as session:
        for row, accepted, errors in outcomes:
            outcome = _record(session, settings, targets, row, accepted, errors, now)
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _skip(session: Session, settings: Settings, targets: Sequence[Target], now: datetime) -> int:
    waiting = or_(
        Notification.status == PENDING,
        and_(Notification.status == SENDING, Notification.lease_until <= now),
    )
    if targets:
        why = "not in PACEKEEPER_NOTIFY_EVENTS"
        where = and_(waiting, Notification.kind.not_in(settings.notify_events))
    else:
        why, where = "no PACEKEEPER_NOTIFY_URLS", waiting
    done = session.execute(
        update(Notification)
        .where(where)
        .values(status=NotificationStatus.SKIPPED.value, last_error=why, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def _claim(session: Session, now: datetime, scrub: Redactor, *, named: bool) -> list[_Claimed]:
    due = or_(
        and_(Notification.status == PENDING, Notification.due_at <= now),
        and_(Notification.status == SENDING, Notification.lease_until <= now),
    )
    ids = list(
        session.scalars(select(Notification.id).where(due).order_by(Notification.id).limit(BATCH))
    )
    if not ids:
        return []
    fences: dict[int, int] = dict(
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), due)
            .values(status=SENDING, attempts=Notification.attempts + 1, lease_until=now + LEASE)
            .returning(Notification.id, Notification.attempts)
            .execution_options(synchronize_session=False)
        ).all()
    )
    rows = session.execute(
        select(Notification, Event, SignalRow, Order)
        .join(Event, Notification.event_id == Event.id)
        .outerjoin(SignalRow, Event.signal_id == SignalRow.id)
        .outerjoin(Order, Event.order_id == Order.id)
        .where(Notification.id.in_(list(fences)))
        .order_by(Notification.id)
    ).all()
    out = []
    for note, ev, signal, order in rows:
        message = render(_facts(note.kind, ev, signal, order, named=named))
        out.append(
            _Claimed(
                id=note.id,
                fence=fences[note.id],
                delivered=list(note.delivered or []),
                message=Message(scrub.text(message.title), scrub.text(message.body), message.level),
            )
        )
    return out


def _facts(
    kind: str, ev: Event, signal: SignalRow | None, order: Order | None, *, named: bool
) -> Facts:
    """What the message is built from: the event, then its order, then its signal.
    ``named``: several accounts are configured, so the message names the account."""
    data = ev.data or {}

    def first(field: str) -> str | None:
        values = (getattr(order, field, None), data.get(field), getattr(signal, field, None))
        return next((v for v in values if v), None)  # a cancel's signal has market ""

    return Facts(
        kind=kind,
        message=ev.message,
        created_at=ev.created_at,
        data=data,
        signal_ref=(signal.source_id or signal.id) if signal is not None else None,
        action=signal.action if signal is not None else None,
        strategy=signal.strategy if signal is not None else None,
        symbol=first("symbol"),
        side=first("side"),
        market=first("market"),
        order_kind=order.kind if order is not None else None,
        account=_account(ev, signal, order) if named else None,
    )


def _account(ev: Event, signal: SignalRow | None, order: Order | None) -> str | None:
    """The account an event is about: its order's, its signal's (a signal for several
    accounts: the ones it names), the kill switch's (one account's, or every account's)."""
    if order is not None:
        return order.account
    if signal is not None and signal.account == FANOUT:
        names = (signal.payload or {}).get("accounts")
        return ", ".join(names) if isinstance(names, list) else None
    if signal is not None:
        return signal.account
    account = (ev.data or {}).get("account")
    if account:
        return str(account)
    return ALL_ACCOUNTS if ev.kind in ("halt", "resume") else None


def _record(
    session: Session,
    settings: Settings,
    targets: Iterable[Target],
    row: _Claimed,
    accepted: list[str],
    errors: list[str],
    now: datetime,
) -> str:
    """Write one row's outcome, fenced; returns the report field it counts in."""
    delivered = sorted({*row.delivered, *accepted})
    values: dict[str, Any] = {"delivered": delivered or None, "lease_until": None}
    if all(t.id in delivered for t in targets):
        values.update(status=NotificationStatus.SENT.value, sent_at=now, last_error=None)
        outcome = "sent"
    elif not accepted and not errors:
        values.update(status=PENDING, attempts=row.fence - 1)
        outcome = "released"
    elif row.fence >= settings.notify_max_attempts:
        why = "; ".join(errors) or "a target was cooling down"
        values.update(status=NotificationStatus.FAILED.value, last_error=why)
        outcome = "failed"
    else:
        why = "; ".join(errors) or "a target was cooling down"
        values.update(status=PENDING, due_at=now + backoff(row.fence), last_error=why)
        outcome = "retrying"
    session.execute(
        update(Notification)
        .where(
            Notification.id == row.id,
            Notification.status == SENDING,
            Notification.attempts == row.fence,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return outcome
