"""The pace policy: schedule maths, verdicts and the numbers they quote."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import Settings
from app.monitoring.pace import PacePolicy, PaceState, assess, fill_fraction, schedule_fraction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_schedule_is_elapsed_over_duration_capped_at_one() -> None:
    assert schedule_fraction(D(0), 300) == 0
    assert schedule_fraction(D(150), 300) == D("0.5")
    assert schedule_fraction(D(900), 300) == 1


def test_fill_fraction_is_executed_over_total() -> None:
    assert fill_fraction(D("0.25"), D("1")) == D("0.25")
    assert fill_fraction(D("2"), D("1")) == 1


@pytest.mark.parametrize(
    ("executed", "elapsed", "last_fill", "policy", "state"),
    [
        # Within the first 10% nothing is judged, even with no fill at all.
        ("0", 29, None, PacePolicy(), PaceState.IN_GRACE),
        # The rule of thumb: under 10% filled after 10% of the duration is behind.
        ("0.05", 30, 29, PacePolicy(), PaceState.BEHIND_SCHEDULE),
        ("0.09", 30, 29, PacePolicy(), PaceState.ON_SCHEDULE),  # one slice short: slack
        ("0.50", 150, 149, PacePolicy(), PaceState.ON_SCHEDULE),
        ("0.40", 150, 149, PacePolicy(), PaceState.BEHIND_SCHEDULE),
        ("0.40", 150, 149, PacePolicy(min_ratio=D("0.5")), PaceState.ON_SCHEDULE),
        # On schedule by quantity, but nothing new for a quarter of the duration: stalled.
        ("0.30", 160, 80, PacePolicy(min_ratio=D("0.5")), PaceState.STALLED),
        (
            "0.30",
            160,
            80,
            PacePolicy(min_ratio=D("0.5"), stall_seconds=D(0)),
            PaceState.ON_SCHEDULE,
        ),
        ("1", 200, 199, PacePolicy(), PaceState.COMPLETE),
        # Past the end and not done: behind (Binance would let it expire; we act now).
        ("0.90", 400, 399, PacePolicy(), PaceState.BEHIND_SCHEDULE),
    ],
)
def test_twap_verdicts(
    executed: str, elapsed: float, last_fill: float | None, policy: PacePolicy, state: PaceState
) -> None:
    verdict = assess(
        total=D("1"),
        executed=D(executed),
        start=T0,
        duration=300,
        now=at(elapsed),
        policy=policy,
        last_fill_at=at(last_fill) if last_fill is not None else None,
    )
    assert verdict.state is state
    assert verdict.behind == (state in (PaceState.BEHIND_SCHEDULE, PaceState.STALLED))


def test_behind_verdict_quotes_its_numbers() -> None:
    verdict = assess(
        total=D("1"),
        executed=D("0.04"),
        start=T0,
        duration=300,
        now=at(66),
        policy=PacePolicy(min_ratio=D("0.5"), slack=D(0)),
    )
    assert verdict.reason == "fill 0.04 < 0.5 × schedule 0.22 after 66 s"


def test_vp_without_duration_uses_only_the_stall_rule() -> None:
    policy = PacePolicy(vp_stall_seconds=D(120))
    kwargs = {"total": D(10), "start": T0, "duration": None, "policy": policy}
    assert assess(executed=D(0), now=at(100), **kwargs).state is PaceState.IN_GRACE
    assert assess(executed=D(0), now=at(130), **kwargs).state is PaceState.STALLED
    recent = assess(executed=D(1), now=at(130), last_fill_at=at(100), **kwargs)
    assert recent.state is PaceState.ON_SCHEDULE and recent.schedule is None


def test_signal_overrides_replace_only_what_they_name() -> None:
    base = PacePolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    policy = base.with_overrides({"grace": 0.2, "min_ratio": "0.5"})
    assert policy.grace == D("0.2") and policy.min_ratio == D("0.5")
    assert policy.slack == base.slack and policy.stall_seconds == base.stall_seconds


fractions = st.decimals(min_value=0, max_value=1, places=4)


@given(executed=fractions, elapsed=st.integers(0, 600), extra=fractions)
def test_more_fill_never_makes_an_algo_behind(executed: D, elapsed: int, extra: D) -> None:
    def state(qty: D) -> PaceState:
        return assess(
            total=D(1),
            executed=qty,
            start=T0,
            duration=300,
            now=at(elapsed),
            policy=PacePolicy(stall_seconds=D(0)),
        ).state

    if state(executed) is not PaceState.BEHIND_SCHEDULE:
        assert state(min(D(1), executed + extra)) is not PaceState.BEHIND_SCHEDULE


@given(elapsed=st.integers(0, 300), duration=st.integers(60, 86_400))
def test_an_algo_exactly_on_schedule_is_never_behind(elapsed: int, duration: int) -> None:
    schedule = schedule_fraction(D(elapsed), duration)
    verdict = assess(
        total=D(1),
        executed=schedule,
        start=T0,
        duration=duration,
        now=at(elapsed),
        policy=PacePolicy(stall_seconds=D(0)),
    )
    assert not verdict.behind
