"""The pace judge against Binance's cadence: false cancels of healthy TWAPs, and how fast stuck
ones are caught. A pure simulation: no exchange, no database, no clock.

    .venv/bin/python bench/pace.py                                # 7 durations x 200 seeds
    .venv/bin/python bench/pace.py --seeds 50 --durations 300 900
    .venv/bin/python bench/pace.py --every-poll --durations 300 600 900   # no shortcut

Each TWAP is planned by ``paper.cadence.twap_plan``, exactly as the paper exchange
slices it (about one child a minute at a jittered second, sizes ±30 %). A *healthy* algo's
children all fill; a *stuck* one's limit is left behind at a random time before its last
child: every child from then on goes out and executes nothing (shown, as the paper shows it,
as an expired IOC whose size catches up what was missed). The monitor polls every
``--interval`` seconds from a random phase and judges with ``app.monitoring.pace.judge``
(the default policy), reading every child that went out before the poll; it cancels at the
first poll that says behind. The algo ends by itself once its last child went out.

For stuck algos the stall is *visible* at the first child that executed nothing; the delay
is from then to the cancel (or to the algo's own end, when that comes first: the monitor
then treats what is left by the signal's remainder policy). The aim is every stuck algo
within the grace period (``grace`` x D) plus two monitor intervals.

"old default" is the policy before issue 10 (fill >= 1.0 x schedule - 0.02 at every poll
after 10 % of D, and no new fill for D/4), on the same algos, for comparison.

Between two children the judge's inputs do not change and its verdict can only move from
"on pace" to "behind" as time passes, so only the last poll before each child is judged,
and the first behind poll found by bisection; ``--every-poll`` judges every poll instead
(slow for long durations) to check that shortcut.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.monitoring.pace import Child, PacePolicy, Progress, judge
from paper.cadence import algo_rng, twap_plan

DURATIONS = (300, 600, 900, 1800, 3600, 14_400, 86_400)
QTY, STEP = Decimal("0.5"), Decimal("0.00001")
T0 = datetime(2026, 12, 1, tzinfo=UTC)
Judge = Callable[[Progress, float], bool]  # (what the children show, seconds) -> behind


@dataclass(frozen=True)
class Event:
    at: float  # seconds after the start
    child: Child


@dataclass(frozen=True)
class Run:
    cancel_at: float | None  # seconds after the start, None when never cancelled
    end: float  # when the last child went out (the algo ends)
    visible: float | None  # stuck: when the first unfilled child went out
    margin: Decimal | None  # healthy: smallest fill - required seen at a poll (new judge)


def children(duration: int, seed: int, stuck_at: float | None) -> list[Event]:
    """The algo's children as the paper exchange sends them (see algos.AlgoBook.run_slice)."""
    plan = twap_plan(QTY, duration, STEP, algo_rng(seed, duration))
    events, sent = [], Decimal(0)
    for step in plan:
        qty = step.target - sent
        if qty <= 0:
            continue
        at = step.offset_ms / 1000
        filled = stuck_at is None or at < stuck_at
        if filled:
            sent += qty
        executed = qty if filled else Decimal(0)
        events.append(Event(at, Child(T0 + timedelta(seconds=at), qty, executed)))
    return events


def new_judge(duration: int, policy: PacePolicy) -> Judge:
    def behind(progress: Progress, t: float) -> bool:
        now = T0 + timedelta(seconds=t)
        verdict = judge(
            total=QTY, progress=progress, start=T0, duration=duration, now=now, policy=policy
        )
        return verdict.behind

    return behind


def old_judge(duration: int) -> Judge:
    """The default before issue 10: linear schedule, min ratio 1.0, slack 0.02, stall D/4."""

    def behind(progress: Progress, t: float) -> bool:
        if t < 0.1 * duration:
            return False
        filled = float(progress.executed / QTY)
        if filled < min(1.0, t / duration) - 0.02:
            return True
        last = (progress.last_fill - T0).total_seconds() if progress.last_fill else 0.0
        return t - last >= duration / 4

    return behind


def first_cancel(events: list[Event], behind: Judge, interval: float, phase: float,
                 every_poll: bool) -> float | None:  # fmt: skip
    """The first poll at which ``behind`` says so, before the algo ends."""
    end = events[-1].at
    progress = Progress()
    bounds = [0.0] + [e.at for e in events]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if i:
            progress = progress.add(events[i - 1].child)
        first = max(0, int((lo - phase) // interval))
        while phase + first * interval < lo:
            first += 1
        last = first
        while phase + (last + 1) * interval < min(hi, end):
            last += 1
        if phase + first * interval >= min(hi, end):
            continue  # no poll in this gap
        polls = range(first, last + 1)
        if every_poll:
            for j in polls:
                if behind(progress, phase + j * interval):
                    return phase + j * interval
            continue
        if not behind(progress, phase + last * interval):
            continue
        low, high = first, last  # the first behind poll is in [low, high]
        while low < high:
            mid = (low + high) // 2
            if behind(progress, phase + mid * interval):
                high = mid
            else:
                low = mid + 1
        return phase + low * interval
    return None


def margin(events: list[Event], duration: int, policy: PacePolicy, interval: float,
           phase: float) -> Decimal:  # fmt: skip
    """The smallest (fill - required) at the last poll before each child, where the schedule
    rule asks for something: how close a healthy algo came to being called behind."""
    worst = Decimal(1)
    progress = Progress()
    for event in events:
        before = phase + ((event.at - phase) // interval) * interval
        if before > 0:
            verdict = judge(
                total=QTY, progress=progress, start=T0, duration=duration,
                now=T0 + timedelta(seconds=before), policy=policy,
            )  # fmt: skip
            if verdict.required:  # something is asked for: how far above it the fill is
                worst = min(worst, verdict.fill_fraction - verdict.required)
        progress = progress.add(event.child)
    return worst


def simulate(duration: int, seed: int, *, stuck: bool, policy: PacePolicy, interval: float,
             every_poll: bool, old: bool = False) -> Run:  # fmt: skip
    rng = random.Random(f"bench-pace:{duration}:{seed}")
    phase = rng.uniform(0, interval)
    plan_end = children(duration, seed, None)[-1].at
    stuck_at = rng.uniform(0, plan_end) if stuck else None
    events = children(duration, seed, stuck_at)
    behind = old_judge(duration) if old else new_judge(duration, policy)
    cancel = first_cancel(events, behind, interval, phase, every_poll)
    visible = next((e.at for e in events if e.child.executed == 0), None)
    worst = None if stuck or old else margin(events, duration, policy, interval, phase)
    return Run(cancel, events[-1].at, visible, worst)


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--durations", type=int, nargs="+", default=list(DURATIONS))
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval, s")
    parser.add_argument("--every-poll", action="store_true", help="judge every poll")
    args = parser.parse_args()
    policy = PacePolicy()
    seeds = range(1, args.seeds + 1)
    print(
        f"default policy: grace {policy.grace}, min_ratio {policy.min_ratio}, slack "
        f"{policy.slack}, stall grace = grace x D; monitor every {args.interval:g} s; "
        f"{args.seeds} seeds per duration"
    )
    head = (
        "duration", "false cancels", "old default", "closest call", "stuck caught",
        "ended first", "within bound", "delay p50", "delay p95", "delay max", "bound",
    )  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    started = time.perf_counter()
    for duration in args.durations:
        run = dict(policy=policy, interval=args.interval, every_poll=args.every_poll)
        healthy = [simulate(duration, s, stuck=False, **run) for s in seeds]
        old = [simulate(duration, s, stuck=False, old=True, **run) for s in seeds]
        stuck = [simulate(duration, s, stuck=True, **run) for s in seeds]
        bound = float(policy.grace) * duration + 2 * args.interval
        caught = [r for r in stuck if r.cancel_at is not None]
        delays = [
            (r.cancel_at if r.cancel_at is not None else r.end) - (r.visible or 0.0) for r in stuck
        ]
        closest = min(r.margin for r in healthy if r.margin is not None)
        cells = (
            f"{duration:,} s",
            f"{sum(r.cancel_at is not None for r in healthy)}/{len(healthy)}",
            f"{sum(r.cancel_at is not None for r in old)}/{len(old)}",
            f"{closest * 100:+.1f} pts",
            pct(len(caught), len(stuck)),
            pct(len(stuck) - len(caught), len(stuck)),
            pct(sum(d <= bound for d in delays), len(delays)),
            f"{statistics.median(delays):.0f} s",
            f"{sorted(delays)[int(0.95 * (len(delays) - 1))]:.0f} s",
            f"{max(delays):.0f} s",
            f"{bound:,.0f} s",
        )
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
