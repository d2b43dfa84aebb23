"""Intake: turn an authenticated body into one stored signal, exactly once.

The signal row is the outbox. It is committed (with its first state event) before the
webhook answers; the job that executes it is enqueued only after that commit, and the
row says whether that happened (``received`` -> ``queued``). A repeat of a signal finds
the first row through the UNIQUE ``idempotency_key``: the sender's ``id``, or a digest of
the canonical body, which counts as a repeat only within ``PACEKEEPER_DEDUPE_WINDOW``.

The hot path uses SQLAlchemy Core (one INSERT ... ON CONFLICT DO NOTHING, one INSERT of
the event, one commit): the unique index, not a read before the write, decides which of
fifty concurrent copies wins, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from app.accounts import DEFAULT_ACCOUNT, FANOUT
from app.errors import AppError, Conflict, ServiceUnavailable
from app.models import Event, SignalStatus, new_id
from app.models import Signal as SignalRow
from app.signals.schemas import DIGEST_PREFIX, Signal, parse_signal

log = logging.getLogger(__name__)

signals = cast(Table, SignalRow.__table__)
events = cast(Table, Event.__table__)

SECRET_FIELD = "secret"
REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class Prepared:
    """A valid signal ready to store: normalised payload, idempotency key and digest."""

    signal: Signal
    digest: str
    key: str
    dedupe_until: datetime | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Intake:
    """The answer to a webhook: which signal, in what state, and whether it was a repeat."""

    signal_id: str
    status: str
    duplicate: bool

    def body(self) -> dict[str, Any]:
        return {"signal_id": self.signal_id, "status": self.status, "duplicate": self.duplicate}


def without_secret(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key != SECRET_FIELD}


def canonical_text(body: dict[str, Any]) -> str:
    """The body as JSON with sorted keys and no whitespace (what the digest is of)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_digest(body: dict[str, Any]) -> str:
    """SHA-256 of the body with sorted keys and no whitespace (pass it without the secret)."""
    return _digest(canonical_text(body))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _may_hold(text: str, secrets: Sequence[str]) -> bool:
    """False when no string in the body whose canonical JSON is ``text`` holds a secret.
    JSON writes a string character by character, so a string holding a secret shows the
    secret's own JSON form (its quotes, backslashes and control characters escaped)."""
    return any(_json_form(secret) in text for secret in secrets)


@functools.lru_cache(maxsize=64)
def _json_form(secret: str) -> str:
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """A copy with any string holding a webhook secret replaced (e.g. pasted into meta)."""
    if isinstance(value, str):
        return REDACTED if any(secret in value for secret in secrets) else value
    if isinstance(value, dict):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    return value


def prepare(
    raw: dict[str, Any],
    *,
    now: datetime,
    dedupe_window: int,
    twap_min_duration: int,
    twap_max_duration: int,
    secrets: Sequence[str] = (),
    accounts: Mapping[str, Collection[str]] | None = None,
) -> Prepared:
    """Validate and key a posted body; raise InvalidSignal. Pure: no I/O, no clock.
    ``accounts``: the configured accounts and the markets each trades."""
    body = without_secret(raw)
    text = canonical_text(body)
    # Searching the text once is cheaper than searching every string of the body (a secret
    # in a settings file, such as a PEM key, may be long and hold newlines).
    if secrets and _may_hold(text, secrets):
        body = redact(body, secrets)
        text = canonical_text(body)
    signal = parse_signal(
        body,
        now=now,
        twap_min_duration=twap_min_duration,
        twap_max_duration=twap_max_duration,
        accounts=accounts,
    )
    digest = _digest(text)
    if signal.id is not None:
        key, dedupe_until = signal.id, None
    else:
        key, dedupe_until = DIGEST_PREFIX + digest, now + timedelta(seconds=dedupe_window)
    return Prepared(signal, digest, key, dedupe_until, signal.payload())


# Built once: the hot path only binds parameters to these.
_INSERT_SIGNAL = {
    name: dialect.insert(signals)
    .on_conflict_do_nothing(index_elements=[signals.c.idempotency_key])
    .returning(signals.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_INSERT_EVENT = insert(events)
_MARK_QUEUED = (
    update(signals)
    .where(
        signals.c.id.in_(bindparam("signal_ids", expanding=True)),
        signals.c.status == SignalStatus.RECEIVED.value,
    )
    .values(
        status=SignalStatus.QUEUED.value, enqueued_at=bindparam("at"), updated_at=bindparam("at")
    )
    .returning(signals.c.id)
)


def _insert_signal(conn: Connection) -> Any:
    return _INSERT_SIGNAL[conn.dialect.name]


def state_event(
    signal_id: str, old: str | None, new: str, now: datetime, **data: Any
) -> dict[str, Any]:
    """An ``events`` row recording one state change of a signal."""
    return {
        "signal_id": signal_id,
        "order_id": None,
        "kind": "state",
        "message": new if old is None else f"{old} -> {new}",
        "data": {"from": old, "to": new, **data},
        "created_at": now,
    }


def _row(
    signal_id: str, prepared: Prepared, now: datetime, source_ip: str | None
) -> dict[str, Any]:
    sig = prepared.signal
    return {
        "id": signal_id,
        "idempotency_key": prepared.key,
        "body_digest": prepared.digest,
        "source_id": sig.id,
        "action": sig.action.value,
        "market": sig.market.value if sig.market else "",
        "symbol": sig.symbol or "",
        "side": sig.side.value if sig.side else None,
        "strategy": sig.strategy,
        "payload": prepared.payload,
        "status": SignalStatus.RECEIVED.value,
        "source_ip": source_ip,
        "received_at": now,
        "updated_at": now,
        "expires_at": sig.expires_at,
        "dedupe_until": prepared.dedupe_until,
        "attempts": 0,
        "account": account_of(sig),
    }


def account_of(sig: Signal) -> str:
    """The ``account`` column of a signal's row: its one account, or FANOUT for several."""
    if not sig.accounts:
        return DEFAULT_ACCOUNT
    return sig.accounts[0] if len(sig.accounts) == 1 else FANOUT


def store_batch(
    conn: Connection, batch: Sequence[tuple[Prepared, datetime, str | None]]
) -> list[Intake | AppError]:
    """:func:`store` for many signals in ``conn``'s transaction, in two statements when
    none of them is a repeat: one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING,
    one INSERT of their first events. A row the unique index turned away (a repeat, a
    key to retire, the same id with another body) takes :func:`store`'s road alone. Each
    answer is its signal's Intake, or the AppError (a 409) for which nothing was written.
    """
    if len(batch) == 1:
        prepared, now, source_ip = batch[0]
        try:
            return [store(conn, prepared, now=now, source_ip=source_ip)]
        except AppError as exc:
            return [exc]
    rows = [_row(new_id(), prepared, now, ip) for prepared, now, ip in batch]
    inserted = set(conn.execute(_insert_signal(conn), rows).scalars())
    fresh = [row for row in rows if row["id"] in inserted]
    if fresh:
        conn.execute(
            _INSERT_EVENT,
            [state_event(row["id"], None, "received", row["received_at"]) for row in fresh],
        )
    answers: list[Intake | AppError] = []
    for row, (prepared, now, source_ip) in zip(rows, batch, strict=True):
        if row["id"] in inserted:
            answers.append(Intake(row["id"], SignalStatus.RECEIVED.value, duplicate=False))
            continue
        try:
            answers.append(store(conn, prepared, now=now, source_ip=source_ip))
        except AppError as exc:
            answers.append(exc)
    return answers


def store(conn: Connection, prepared: Prepared, *, now: datetime, source_ip: str | None) -> Intake:
    """Insert the signal and its first event in ``conn``'s transaction, or find the first one.

    Raises Conflict when the key belongs to a different body. The caller commits; the
    answer must not go out before that commit.
    """
    sig = prepared.signal
    signal_id = new_id()
    row = _row(signal_id, prepared, now, source_ip)
    # A digest key past its window has to be retired first: a few rounds at most.
    for _ in range(3):
        inserted = conn.execute(_insert_signal(conn), row).scalar()
        if inserted is not None:
            conn.execute(_INSERT_EVENT, state_event(signal_id, None, "received", now))
            return Intake(signal_id, SignalStatus.RECEIVED.value, duplicate=False)
        first = conn.execute(
            select(
                signals.c.id,
                signals.c.status,
                signals.c.body_digest,
                signals.c.dedupe_until,
            ).where(signals.c.idempotency_key == prepared.key)
        ).first()
        if first is None:
            continue  # the other writer rolled back or retired the key: try again
        if first.dedupe_until is not None and _aware(first.dedupe_until) <= now:
            _retire_key(conn, first.id, prepared.key)
            continue
        if first.body_digest != prepared.digest:
            raise Conflict(
                f"signal id {sig.id!r} was already used for a different signal",
                signal_id=first.id,
            )
        return Intake(first.id, first.status, duplicate=True)
    raise ServiceUnavailable("could not store the signal; send again")


def record(
    engine: Engine, prepared: Prepared, *, now: datetime, source_ip: str | None = None
) -> Intake:
    """Store one signal in its own transaction and commit (see IntakeWriter for batches)."""
    try:
        with engine.begin() as conn:
            return store(conn, prepared, now=now, source_ip=source_ip)
    except DBAPIError as exc:
        log.error("database unavailable while storing a signal: %s", type(exc.orig).__name__)
        raise ServiceUnavailable() from None


def _retire_key(conn: Connection, signal_id: str, key: str) -> None:
    """Free a digest key whose window has passed, so the same body makes a new signal."""
    conn.execute(
        update(signals)
        .where(signals.c.id == signal_id, signals.c.idempotency_key == key)
        .values(idempotency_key=f"{key}:{signal_id}")
    )


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def mark_queued_in(
    conn: Connection, signal_ids: Sequence[str], *, now: datetime, job_ids: dict[str, str]
) -> list[str]:
    """received -> queued for signals whose job now exists; returns the ids changed."""
    if not signal_ids:
        return []
    changed = list(
        conn.execute(_MARK_QUEUED, {"signal_ids": list(signal_ids), "at": now}).scalars()
    )
    if changed:
        conn.execute(
            _INSERT_EVENT,
            [state_event(sid, "received", "queued", now, job_id=job_ids[sid]) for sid in changed],
        )
    return changed


def mark_queued(
    engine: Engine, signal_ids: Sequence[str], *, now: datetime, job_ids: dict[str, str]
) -> list[str]:
    """:func:`mark_queued_in` in its own transaction."""
    if not signal_ids:
        return []
    with engine.begin() as conn:
        return mark_queued_in(conn, signal_ids, now=now, job_ids=job_ids)


def record_requeued(
    engine: Engine,
    signal_ids: Sequence[str],
    *,
    now: datetime,
    job_ids: dict[str, str],
) -> None:
    """Note that queued signals whose job had vanished from Redis were enqueued again."""
    if not signal_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(signals)
            .where(signals.c.id.in_(list(signal_ids)))
            .values(enqueued_at=now, updated_at=now)
        )
        conn.execute(
            _INSERT_EVENT,
            [
                {
                    "signal_id": sid,
                    "order_id": None,
                    "kind": "requeued",
                    "message": "its job was gone from the queue; enqueued again",
                    "data": {"job_id": job_ids[sid]},
                    "created_at": now,
                }
                for sid in signal_ids
            ],
        )
