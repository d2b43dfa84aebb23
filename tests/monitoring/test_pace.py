"""The pace judge: schedule maths, the cadence it learns from sub-orders, its verdicts and the
numbers they quote, against Binance's cadence (``paper/cadence.py``)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import Settings
from app.monitoring.pace import (
    Child,
    PacePolicy,
    PaceState,
    Progress,
    fill_fraction,
    judge,
    learn_cadence,
    progress_of,
    schedule_fraction,
)
from paper.cadence import algo_rng, twap_plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = PacePolicy()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def child(seconds: float, qty: str, executed: str | None = None) -> Child:
    return Child(at(seconds), D(qty), D(qty if executed is None else executed))


def verdict_at(seconds: float, children: list[Child], *, duration: int | None = 300,
               policy: PacePolicy = POLICY, total: str = "1"):  # fmt: skip
    return judge(
        total=D(total), progress=progress_of(children), start=T0, duration=duration,
        now=at(seconds), policy=policy,
    )  # fmt: skip


def test_schedule_is_elapsed_over_duration_capped_at_one() -> None:
    assert schedule_fraction(D(0), 300) == 0
    assert schedule_fraction(D(150), 300) == D("0.5")
    assert schedule_fraction(D(900), 300) == 1


def test_fill_fraction_is_executed_over_total() -> None:
    assert fill_fraction(D("0.25"), D("1")) == D("0.25")
    assert fill_fraction(D("2"), D("1")) == 1


def test_cadence_falls_back_to_a_child_a_minute_until_one_is_seen() -> None:
    cadence = learn_cadence(Progress(), total=D(1), start=T0, duration=1800, policy=POLICY)
    assert (cadence.interval, cadence.size, cadence.learned) == (D(60), D(60) / 1800, False)
    short = learn_cadence(Progress(), total=D(1), start=T0, duration=30, policy=POLICY)
    assert short.interval == 30 and short.size == 1


def test_cadence_is_learned_from_the_children() -> None:
    # Fine slices: one every 10 s of a tenth each.
    even = progress_of(child(10 * k, "0.1") for k in range(1, 4))
    assert learn_cadence(even, total=D(1), start=T0, duration=100, policy=POLICY).interval == 12
    # One child, early in its slot: its size (a fifth of 300 s = a minute) says more.
    early = progress_of([child(6, "0.2")])
    learned = learn_cadence(early, total=D(1), start=T0, duration=300, policy=POLICY)
    assert learned.interval == 60 and learned.size == D("0.2") and learned.learned
    # Children that carry what earlier ones could not execute do not stretch the interval.
    caught_up = progress_of([child(30, "0.2", "0"), child(90, "0.4"), child(150, "0.2")])
    assert (
        learn_cadence(caught_up, total=D(1), start=T0, duration=300, policy=POLICY).interval == 60
    )


def test_progress_adds_up_children_one_at_a_time_as_from_a_list() -> None:
    children = [child(50, "0.2"), child(100, "0.2", "0"), child(170, "0.4", "0.1")]
    stepwise = Progress()
    for c in children:
        stepwise = stepwise.add(c)
    assert stepwise == progress_of(reversed(children))
    assert stepwise.executed == D("0.3") and stepwise.last_fill == at(170)
    assert stepwise.first_unfilled is None and stepwise.count == 3


@pytest.mark.parametrize("duration", [300, 900, 3600])
@pytest.mark.parametrize("seed", range(1, 11))
def test_a_healthy_twap_on_binance_cadence_is_never_behind(duration: int, seed: int) -> None:
    plan = twap_plan(D(1), duration, D("0.00001"), algo_rng(seed, duration))
    sent, progress, k = D(0), Progress(), 0
    for second in range(0, int(plan[-1].offset_ms / 1000), 5):
        while k < len(plan) and plan[k].offset_ms <= second * 1000:
            progress = progress.add(Child(at(plan[k].offset_ms / 1000), plan[k].target - sent,
                                          plan[k].target - sent))  # fmt: skip
            sent, k = plan[k].target, k + 1
        verdict = judge(total=D(1), progress=progress, start=T0, duration=duration,
                        now=at(second), policy=POLICY)  # fmt: skip
        assert not verdict.behind, (second, verdict.reason)


def test_the_rule_of_thumb_reads_the_schedule_one_child_late() -> None:
    # A 300 s TWAP whose first child (a fifth, at 30 s) found nothing: at 70 s the schedule
    # one child earlier is 0.03; half of it, less the slack, asks for nothing yet.
    missed, no_stall = [child(30, "0.2", "0")], PacePolicy(stall_seconds=D(0))
    assert verdict_at(70, missed, policy=no_stall).state is PaceState.ON_SCHEDULE
    verdict = verdict_at(120, missed, policy=no_stall)
    assert verdict.state is PaceState.BEHIND_SCHEDULE
    assert verdict.reason == "fill 0.00 < 0.5 × schedule 0.20 one child (60 s) earlier, after 120 s"
    assert verdict.required == D("0.08") and verdict.schedule == D("0.4")
    # The same fill is on pace with the first child done.
    assert not verdict_at(120, [child(30, "0.2")]).behind


def test_nothing_is_called_missing_before_a_child_is_due() -> None:
    # No child seen at all: the judge waits 2.5 assumed intervals before asking for fills.
    assert verdict_at(140, []).state is PaceState.ON_SCHEDULE
    late = verdict_at(150, [])
    assert late.state is PaceState.BEHIND_SCHEDULE and late.children == 0


def test_a_limit_the_market_left_is_stalled_after_the_grace_period() -> None:
    children = [child(40, "0.2"), child(100, "0.2"), child(170, "0.2", "0")]
    # Filled 0.4 at 170 s: on pace by the schedule rule; the unfilled child shows the stall.
    waiting = verdict_at(199, children)
    assert waiting.state is PaceState.ON_SCHEDULE and waiting.stall_since == 170
    stalled = verdict_at(200, children)
    assert stalled.state is PaceState.STALLED
    assert stalled.reason == (
        "no new fill for 30 s: 1 child unfilled since 170 s (stall grace 30 s), after 200 s"
    )
    # A fill after the unfilled child ends the stall.
    assert not verdict_at(200, [*children, child(195, "0.3")]).behind
    # The stall rule can be switched off.
    off = PacePolicy(stall_seconds=D(0))
    assert verdict_at(200, children, policy=off).state is PaceState.ON_SCHEDULE


def test_children_that_stop_coming_are_a_stall_too() -> None:
    # An exchange that shows no unfilled children: 2.5 intervals of silence make it visible.
    children = [child(30, "0.2"), child(90, "0.2")]
    assert verdict_at(239, children).stall_since is None
    assert verdict_at(240, children).stall_since == 240
    stalled = verdict_at(270, children)
    assert stalled.state is PaceState.STALLED and "no child came by 240 s" in stalled.reason


def test_vp_without_duration_uses_only_the_stall_rule() -> None:
    policy = PacePolicy(vp_stall_seconds=D(120))
    assert verdict_at(100, [], duration=None, policy=policy).state is PaceState.IN_GRACE
    assert verdict_at(130, [], duration=None, policy=policy).state is PaceState.STALLED
    recent = verdict_at(130, [child(100, "1")], duration=None, policy=policy, total="10")
    assert recent.state is PaceState.ON_SCHEDULE and recent.schedule is None
    stale = verdict_at(221, [child(100, "1")], duration=None, policy=policy, total="10")
    assert stale.reason == "no new fill for 121 s (stall window 120 s) after 221 s"


def test_signal_overrides_replace_only_what_they_name() -> None:
    base = PacePolicy.from_settings(Settings(_env_file=None))
    assert base.min_ratio == D("0.5") and base.grace == D("0.1")
    policy = base.with_overrides({"grace": 0.2, "min_ratio": "0.8"})
    assert policy.grace == D("0.2") and policy.min_ratio == D("0.8")
    assert policy.slack == base.slack and policy.stall_seconds == base.stall_seconds


fractions = st.decimals(min_value=0, max_value=1, places=4)


@given(
    fills=st.lists(fractions, min_size=1, max_size=4),
    elapsed=st.integers(0, 600),
    extra=fractions,
)
def test_more_fill_never_makes_an_algo_behind(fills: list[D], elapsed: int, extra: D) -> None:
    # The same children (a fifth each, a minute apart), one of them executing more.
    def state(executed: list[D]) -> PaceState:
        children = [Child(at(30 + 60 * k), D("0.2"), e * D("0.2")) for k, e in enumerate(executed)]
        return judge(total=D(1), progress=progress_of(children), start=T0, duration=300,
                     now=at(elapsed), policy=PacePolicy(stall_seconds=D(0))).state  # fmt: skip

    if state(fills) is not PaceState.BEHIND_SCHEDULE:
        more = [*fills[:-1], min(D(1), fills[-1] + extra)]
        assert state(more) is not PaceState.BEHIND_SCHEDULE


@given(elapsed=st.integers(0, 86_400), duration=st.integers(300, 86_400))
def test_an_algo_on_its_linear_schedule_is_never_behind(elapsed: int, duration: int) -> None:
    done = schedule_fraction(D(elapsed), duration)
    progress = (
        progress_of([Child(at(min(elapsed, 30)), D(60) / duration, done)]) if done else Progress()
    )
    verdict = judge(total=D(1), progress=progress, start=T0, duration=duration, now=at(elapsed),
                    policy=PacePolicy(stall_seconds=D(0)))  # fmt: skip
    assert not verdict.behind
