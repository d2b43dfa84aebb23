"""Is a working algo on pace? Pure functions of its child orders and times; no I/O, no clock.

Binance documents no TWAP slice schedule. Its only hint ("quantity * 60 / duration should be
larger than minQty") means about one child a minute, with sizes and timing that vary
(reference §9; ``paper/cadence.py`` models it). A judge that wants the linear schedule
at every poll cancels healthy algos; this one allows for the cadence it learns from the
algo's own sub-orders, and judges on them, never on the algo's ``executedQty`` (a working
spot algo shows nothing there until it ends).

For a TWAP of duration D started at t0 with total quantity Q, at ``now``:

    schedule      = min(1, (now - t0) / D)
    fill_fraction = (the children's executedQty added up) / Q
    I             = the child interval: the children's spacing, or what the first child's
                    size implies (5 % of a 20-minute TWAP is a minute's worth), whichever is
                    longer; 60 s until a child is seen, as Binance's rule implies
    required      = min_ratio * max(0, schedule - I / D) - slack

*Behind schedule* once past the grace period (``grace`` x D) with a child due (one seen, or
2.5 I gone by), when ``fill_fraction < required``: below ``min_ratio`` of the schedule one
child interval earlier, so a child not due yet is never counted missing. At the end of the
grace period this is the Binance algo guide's rule of thumb (under 10 % filled after 10 % of
the duration: the limit is too tight), with the allowances a real cadence needs: the schedule
read one child late, and half of it required (child sizes vary ±30 %; ``bench/pace.py``
shows that the literal rule cancels healthy algos of every duration).

*Stalled* when the algo has visibly stopped filling for ``stall_seconds`` (default: the
grace period, ``grace`` x D). The stall is visible from the first child after the last fill
that executed nothing (Binance sent it; the market had left the limit), or, should no child
come at all, from 2.5 child intervals after the last one (or the start). So a limit the
market has left is cancelled within the grace period plus the monitor's own delay once the
stall shows, whatever the duration.

VP algos have no duration: only the stall rule applies, as no new fill for ``stall_seconds``
(default ``vp_stall_seconds``) since the last fill or the start; the signal's expiry is
checked by the service.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

ZERO = Decimal(0)
ONE = Decimal(1)
HALF = Decimal("0.5")
# Children more than this many intervals apart are not a jittered cadence but a stop.
QUIET_INTERVALS = Decimal("2.5")


class PaceState(enum.StrEnum):
    IN_GRACE = "in_grace"
    ON_SCHEDULE = "on_schedule"
    BEHIND_SCHEDULE = "behind_schedule"
    STALLED = "stalled"
    COMPLETE = "complete"


@dataclass(frozen=True)
class PacePolicy:
    """When an algo counts as behind. ``stall_seconds=None`` means the default window."""

    grace: Decimal = Decimal("0.1")  # fraction of the duration before any judgement
    min_ratio: Decimal = Decimal("0.5")  # required fill, relative to the lagged schedule
    slack: Decimal = Decimal("0.02")  # absolute allowance on top of the one-child lag
    stall_seconds: Decimal | None = None  # how long a stall is tolerated; 0 disables
    vp_stall_seconds: Decimal = Decimal("600")  # the stall window of an algo with no duration
    child_seconds: Decimal = Decimal("60")  # the child interval until one is learned

    @classmethod
    def from_settings(cls, settings: Settings) -> PacePolicy:
        return cls(
            grace=settings.pace_grace,
            min_ratio=settings.pace_min_ratio,
            slack=settings.pace_slack,
            stall_seconds=settings.pace_stall_seconds,
            vp_stall_seconds=settings.pace_vp_stall_seconds,
        )

    def stall_window(self, duration: int | None) -> Decimal | None:
        """Seconds a stall is tolerated (TWAP: once visible; VP: since the last fill), or
        None when the rule is off."""
        if self.stall_seconds is not None:
            return self.stall_seconds if self.stall_seconds > 0 else None
        if duration:
            return self.grace * Decimal(duration)
        return self.vp_stall_seconds

    def with_overrides(self, overrides: dict[str, Any] | None) -> PacePolicy:
        """Apply a signal's ``pace`` object (grace, min_ratio, slack, stall_seconds)."""
        if not overrides:
            return self
        changes: dict[str, Decimal | None] = {}
        for name in ("grace", "min_ratio", "slack", "stall_seconds"):
            if overrides.get(name) is not None:
                changes[name] = Decimal(str(overrides[name]))
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Child:
    """One sub-order as the judge needs it: when it went out, its size, what it executed."""

    at: datetime
    qty: Decimal
    executed: Decimal


@dataclass(frozen=True)
class Progress:
    """What the judge needs of an algo's children, summed up (``progress_of``, or ``add``
    one child at a time in time order, as ``bench/pace.py`` does)."""

    count: int = 0
    executed: Decimal = ZERO
    first_qty: Decimal = ZERO  # the first child's size (origQty); later ones may catch up
    last_child: datetime | None = None
    last_fill: datetime | None = None
    first_unfilled: datetime | None = None  # the first child since the last fill that got nothing
    unfilled: int = 0  # children since the last fill that got nothing

    def add(self, child: Child) -> Progress:
        """This progress with one more child, no earlier than the last one."""
        filled = child.executed > 0
        return Progress(
            count=self.count + 1,
            executed=self.executed + child.executed,
            first_qty=self.first_qty if self.count else child.qty,
            last_child=child.at,
            last_fill=child.at if filled else self.last_fill,
            first_unfilled=None if filled else (self.first_unfilled or child.at),
            unfilled=0 if filled else self.unfilled + 1,
        )


def progress_of(children: Iterable[Child]) -> Progress:
    out = Progress()
    for child in sorted(children, key=lambda c: c.at):
        out = out.add(child)
    return out


@dataclass(frozen=True)
class Cadence:
    """The child interval (seconds) and a child's share of the total, and whether they were
    learned from sub-orders (else the fallback: ``child_seconds`` and its share of D)."""

    interval: Decimal
    size: Decimal
    learned: bool


@dataclass(frozen=True)
class PaceVerdict:
    state: PaceState
    schedule: Decimal | None
    fill_fraction: Decimal
    elapsed: Decimal
    reason: str
    required: Decimal | None = None  # the fill the schedule rule asks for now
    cadence: Cadence | None = None
    children: int = 0
    stall_since: Decimal | None = None  # seconds after the start the stall became visible

    @property
    def behind(self) -> bool:
        return self.state in (PaceState.BEHIND_SCHEDULE, PaceState.STALLED)


def schedule_fraction(elapsed: Decimal, duration: int) -> Decimal:
    """The share of the quantity a linear schedule has due after ``elapsed`` seconds."""
    if duration <= 0:
        return ONE
    return min(ONE, max(ZERO, elapsed / Decimal(duration)))


def fill_fraction(executed: Decimal, total: Decimal) -> Decimal:
    if total <= 0:
        return ONE
    return min(ONE, max(ZERO, executed / total))


def _seconds(later: datetime, earlier: datetime) -> Decimal:
    return Decimal(str((later - earlier).total_seconds()))


def _fmt(value: Decimal, places: str = "0.01") -> str:
    return str(value.quantize(Decimal(places)))


def learn_cadence(
    progress: Progress,
    *,
    total: Decimal,
    start: datetime,
    duration: int | None,
    policy: PacePolicy,
) -> Cadence:
    """The child interval and size, from the children seen so far (see the module doc)."""
    span = Decimal(duration) if duration else None
    fallback = min(policy.child_seconds, span) if span else policy.child_seconds
    if not progress.count or progress.last_child is None:
        return Cadence(fallback, min(ONE, fallback / span) if span else ZERO, False)
    n = Decimal(progress.count)
    # Child k goes out about k - 1/2 intervals after the start (somewhere in its slot): a
    # good estimate from two children on, a poor one from the first alone (anywhere in its
    # slot), which its size and the assumed interval bound. Only the first child's size: a
    # later one may carry what earlier ones could not execute (the limit held them back).
    by_time = max(ZERO, _seconds(progress.last_child, start)) / (n - HALF)
    if progress.count < 2:
        by_time = max(by_time, fallback)  # one child says little: no faster than assumed
    size = progress.first_qty / total if total > 0 else ZERO
    interval = max(by_time, size * span) if span else by_time
    return Cadence(interval, min(ONE, size), True)


def judge(
    *,
    total: Decimal,
    progress: Progress,
    start: datetime,
    duration: int | None,
    now: datetime,
    policy: PacePolicy,
) -> PaceVerdict:
    """Judge one algo's pace at ``now`` (exchange time) from its children, with the numbers
    behind the verdict."""
    elapsed = max(ZERO, _seconds(now, start))
    filled = fill_fraction(progress.executed, total)
    cadence = learn_cadence(progress, total=total, start=start, duration=duration, policy=policy)
    common: dict[str, Any] = {"cadence": cadence, "children": progress.count}
    secs = f"{int(elapsed)} s"
    if not duration:
        return _judge_vp(filled, progress, start, now, elapsed, policy, common)
    schedule = schedule_fraction(elapsed, duration)
    if filled >= ONE:
        return PaceVerdict(
            PaceState.COMPLETE, schedule, filled, elapsed, f"filled after {secs}", **common
        )

    span = Decimal(duration)
    lagged = max(ZERO, schedule - cadence.interval / span)
    required = max(ZERO, policy.min_ratio * lagged - policy.slack)
    common["required"] = required
    quiet_for = QUIET_INTERVALS * cadence.interval
    child_due = progress.count > 0 or elapsed >= quiet_for
    if elapsed >= policy.grace * span and child_due and filled < required:
        reason = (
            f"fill {_fmt(filled)} < {policy.min_ratio.normalize()} × schedule {_fmt(lagged)} "
            f"one child ({int(cadence.interval)} s) earlier, after {secs}"
        )
        return PaceVerdict(PaceState.BEHIND_SCHEDULE, schedule, filled, elapsed, reason, **common)

    since, how = _stall_visible(progress, start, now, quiet_for)
    window = policy.stall_window(duration)
    if since is not None:
        common["stall_since"] = max(ZERO, _seconds(since, start))
        quiet = _seconds(now, since)
        if window is not None and quiet >= window:
            reason = (
                f"no new fill for {int(quiet)} s: {how} {int(common['stall_since'])} s "
                f"(stall grace {int(window)} s), after {secs}"
            )
            return PaceVerdict(PaceState.STALLED, schedule, filled, elapsed, reason, **common)
    if elapsed < policy.grace * span:
        return PaceVerdict(
            PaceState.IN_GRACE, schedule, filled, elapsed, f"in grace at {secs}", **common
        )
    return PaceVerdict(
        PaceState.ON_SCHEDULE, schedule, filled, elapsed, f"on pace after {secs}", **common
    )


def _stall_visible(
    progress: Progress, start: datetime, now: datetime, quiet_for: Decimal
) -> tuple[datetime | None, str]:
    """Since when the children show the algo not filling, and how; (None, "") if they don't."""
    candidates: list[tuple[datetime, str]] = []
    if progress.first_unfilled is not None:
        missed = progress.unfilled
        what = f"{missed} child{'ren' if missed > 1 else ''} unfilled since"
        candidates.append((progress.first_unfilled, what))
    silent_from = (progress.last_child or start) + timedelta(seconds=float(quiet_for))
    if now >= silent_from:
        candidates.append((silent_from, "no child came by"))
    if not candidates:
        return None, ""
    return min(candidates)


def _judge_vp(
    filled: Decimal,
    progress: Progress,
    start: datetime,
    now: datetime,
    elapsed: Decimal,
    policy: PacePolicy,
    common: dict[str, Any],
) -> PaceVerdict:
    secs = f"{int(elapsed)} s"
    if filled >= ONE:
        return PaceVerdict(
            PaceState.COMPLETE, None, filled, elapsed, f"filled after {secs}", **common
        )
    window = policy.stall_window(None)
    if window is not None and elapsed < window:
        return PaceVerdict(
            PaceState.IN_GRACE, None, filled, elapsed, f"in grace at {secs}", **common
        )
    if window is not None:
        since = progress.last_fill or start
        quiet = _seconds(now, since)
        if quiet >= window:
            what = "no new fill" if progress.last_fill else "no fill"
            reason = f"{what} for {int(quiet)} s (stall window {int(window)} s) after {secs}"
            return PaceVerdict(PaceState.STALLED, None, filled, elapsed, reason, **common)
    return PaceVerdict(
        PaceState.ON_SCHEDULE, None, filled, elapsed, f"on pace after {secs}", **common
    )
