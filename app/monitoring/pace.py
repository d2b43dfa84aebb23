"""Is a working algo on pace? Pure functions of quantities and times; no I/O, no clock.

For a TWAP of duration D started at t0 with total quantity Q:

    schedule(t)      = min(1, (t - t0) / D)
    fill_fraction(t) = executedQty / Q

After the grace period (a fraction of D) the algo is *behind schedule* when
``fill_fraction < min_ratio * schedule - slack``, or *stalled* when it has had no new fill
for the stall window. The defaults are Binance's rule of thumb from its algo guide
("under 10% filled after 10% of the duration means the limit price is too tight"):
grace 0.1 and min_ratio 1.0, with a slack of two points of the total so that one
not-yet-executed slice is not mistaken for a laggard. VP algos have no duration, so only
the stall rule applies to them (and the signal's expiry, which the service checks).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

ZERO = Decimal(0)
ONE = Decimal(1)


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
    min_ratio: Decimal = Decimal("1.0")  # required fill fraction, relative to the schedule
    slack: Decimal = Decimal("0.02")  # absolute allowance for slice granularity
    stall_seconds: Decimal | None = None  # no new fill for this long = stalled; 0 disables
    vp_stall_seconds: Decimal = Decimal("600")  # the stall window of an algo with no duration

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
        """Seconds without a fill that make an algo stalled, or None when the rule is off."""
        if self.stall_seconds is not None:
            return self.stall_seconds if self.stall_seconds > 0 else None
        if duration:
            # A quarter of the schedule with no fill at all is not a slow market, it is stuck.
            return Decimal(duration) / 4
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
class PaceVerdict:
    state: PaceState
    schedule: Decimal | None
    fill_fraction: Decimal
    elapsed: Decimal
    reason: str

    @property
    def behind(self) -> bool:
        return self.state in (PaceState.BEHIND_SCHEDULE, PaceState.STALLED)


def schedule_fraction(elapsed: Decimal, duration: int) -> Decimal:
    """The share of the quantity that should have executed after ``elapsed`` seconds."""
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


def assess(
    *,
    total: Decimal,
    executed: Decimal,
    start: datetime,
    duration: int | None,
    now: datetime,
    policy: PacePolicy,
    last_fill_at: datetime | None = None,
) -> PaceVerdict:
    """Judge one algo's pace at ``now`` (exchange time), with the numbers behind the verdict."""
    elapsed = max(ZERO, _seconds(now, start))
    filled = fill_fraction(executed, total)
    schedule = schedule_fraction(elapsed, duration) if duration else None
    secs = f"{int(elapsed)} s"

    if filled >= ONE:
        return PaceVerdict(PaceState.COMPLETE, schedule, filled, elapsed, f"filled after {secs}")

    grace_seconds = policy.grace * Decimal(duration) if duration else ZERO
    stall = policy.stall_window(duration)
    # Without a duration the stall window itself is the grace period.
    if elapsed < grace_seconds or (not duration and stall is not None and elapsed < stall):
        return PaceVerdict(PaceState.IN_GRACE, schedule, filled, elapsed, f"in grace at {secs}")

    if schedule is not None:
        required = policy.min_ratio * schedule - policy.slack
        if filled < required:
            reason = (
                f"fill {_fmt(filled)} < {policy.min_ratio.normalize()} × schedule "
                f"{_fmt(schedule)} after {secs}"
            )
            return PaceVerdict(PaceState.BEHIND_SCHEDULE, schedule, filled, elapsed, reason)

    if stall is not None:
        since = last_fill_at or start
        quiet = _seconds(now, since)
        if quiet >= stall:
            what = "no fill" if last_fill_at is None else "no new fill"
            reason = f"{what} for {int(quiet)} s (stall window {int(stall)} s) after {secs}"
            return PaceVerdict(PaceState.STALLED, schedule, filled, elapsed, reason)

    return PaceVerdict(PaceState.ON_SCHEDULE, schedule, filled, elapsed, f"on pace after {secs}")
