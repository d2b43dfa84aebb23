"""The cadence model shared by the paper exchange and bench/pace.py: about one child a minute,
each at a jittered second of its slot, sizes jittered and adding up to the total."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from paper.cadence import algo_rng, twap_plan, vp_gap_ms, vp_share

D = Decimal
STEP = D("0.00001")


@pytest.mark.parametrize("duration", [300, 900, 3600, 86_400])
def test_binance_cadence_sends_about_one_child_a_minute_adding_up_to_the_total(
    duration: int,
) -> None:
    plan = twap_plan(D("1.5"), duration, STEP, algo_rng(7, 1))

    assert len(plan) == duration // 60
    assert plan[-1].target == D("1.5")
    targets = [D(0)] + [c.target for c in plan]
    sizes = [b - a for a, b in pairwise(targets)]
    nominal = D("1.5") / len(plan)
    assert all(s % STEP == 0 for s in sizes)
    assert all(nominal * D("0.5") < s < nominal * D("1.5") for s in sizes)
    assert max(sizes) / min(sizes) > D("1.4")  # uneven, not equal slices
    for k, child in enumerate(plan):  # each inside its own minute, never on its edge
        assert k * 60_000 + 6_000 <= child.offset_ms <= k * 60_000 + 54_000
    offsets = [c.offset_ms for c in plan]
    assert len({o % 60_000 for o in offsets}) > 1  # jittered, not on the minute


def test_the_same_seed_and_algo_give_the_same_plan_and_others_differ() -> None:
    one = twap_plan(D(1), 900, STEP, algo_rng(7, 10_001))
    assert one == twap_plan(D(1), 900, STEP, algo_rng(7, 10_001))
    assert one != twap_plan(D(1), 900, STEP, algo_rng(7, 10_002))


def test_fine_cadence_is_even_slices() -> None:
    plan = twap_plan(D("0.3"), 30, STEP, algo_rng(7, 1), cadence="fine", slices=60)
    assert [c.offset_ms for c in plan] == [k * 1000 for k in range(1, 31)]
    assert [c.target for c in plan[:3]] == [D("0.01"), D("0.02"), D("0.03")]


def test_vp_children_come_every_5_to_15_s_with_a_jittered_share() -> None:
    rng = algo_rng(7, 3)
    gaps = [vp_gap_ms(rng) for _ in range(200)]
    assert min(gaps) >= 5_000 and max(gaps) <= 15_000 and len(set(gaps)) > 50
    shares = {vp_share(D("0.1"), D("0.3"), 10_000, rng, cadence="binance") for _ in range(50)}
    assert min(shares) >= D("0.21") and max(shares) <= D("0.39") and len(shares) > 10
    assert vp_gap_ms(rng, cadence="fine") == 1000
    assert vp_share(D("0.1"), D("0.3"), 1000, rng, cadence="fine") == D("0.03")
