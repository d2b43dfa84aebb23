"""When a TWAP or VP sends its child orders, and how big they are: the one cadence model shared
by the paper exchange (``algos.py``) and the pace simulation (``bench/pace.py``), so the
bench simulates exactly what the paper does.

Binance documents no slice schedule. Its only hint is the futures TWAP rule "``quantity`` * 60
/ ``duration`` should be larger than minQty", i.e. about one child a minute of 60/D of the
total, with sizes and timing that vary (reference §9). The ``binance`` cadence models that:

* a TWAP of D seconds sends ``n = max(1, round(D / 60))`` children, one per slot of
  ``I = D / n`` seconds; child k goes out at a jittered second inside its slot,
  ``((k - 1) + u) * I`` with ``u`` uniform in [0.1, 0.9], so two children are 0.2 I to 1.8 I
  apart;
* child sizes are the total split by weights ``1 + v`` with ``v`` uniform in [-0.3, 0.3],
  each cumulative target rounded down to the step and the last one exactly the total, so
  they add up to it;
* a VP child goes out every 5 to 15 s and takes its urgency's share of the volume traded
  since the previous child, times a factor uniform in [0.7, 1.3].

The ``fine`` cadence is the old, even one for fast tests: ``ceil(D / interval)`` children
at ``interval = max(1 s, D / slices)``, child k bringing the total to ``k / n``; a VP child
every second at exactly its share.

Pure code: the caller passes a ``random.Random`` (one per algo: ``algo_rng``) and the step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from paper.numbers import round_down

Cadence = Literal["binance", "fine"]

CHILD_SECONDS = 60  # one child a minute: Binance's quantity * 60 / duration rule
SLOT_JITTER = (0.1, 0.9)  # where in its slot a child goes out
SIZE_JITTER = 0.3  # child weights 1 ± 0.3
VP_GAP_MS = (5_000, 15_000)  # between two VP children
VP_SIZE_JITTER = 0.3


@dataclass(frozen=True)
class ChildPlan:
    """One TWAP child: when it goes out (ms after the algo's start) and the cumulative
    quantity the algo should have sent once it has gone out."""

    offset_ms: int
    target: Decimal


def algo_rng(seed: int, algo_id: int) -> random.Random:
    """The random stream of one algo: the same for the same exchange seed and algo id."""
    return random.Random(f"{seed}:{algo_id}")


def twap_plan(
    total: Decimal,
    duration_s: int,
    step: Decimal,
    rng: random.Random,
    *,
    cadence: Cadence = "binance",
    slices: int = 60,
) -> list[ChildPlan]:
    """The children of a TWAP of ``total`` over ``duration_s`` seconds, in time order."""
    duration_ms = duration_s * 1000
    if cadence == "fine":
        interval = max(1000, math.ceil(duration_ms / max(1, slices)))
        n = max(1, math.ceil(duration_ms / interval))
        return [
            ChildPlan(
                min(k * interval, duration_ms),
                total if k == n else round_down(total * k / n, step),
            )
            for k in range(1, n + 1)
        ]
    n = max(1, round(duration_s / CHILD_SECONDS))
    slot_ms = duration_ms / n
    low, high = SLOT_JITTER
    weights = [Decimal(str(round(1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER), 6))) for _ in range(n)]
    whole = sum(weights, Decimal(0))
    plan, running = [], Decimal(0)
    for k in range(1, n + 1):
        offset = int(((k - 1) + rng.uniform(low, high)) * slot_ms)
        running += weights[k - 1]
        target = total if k == n else round_down(total * running / whole, step)
        plan.append(ChildPlan(offset, target))
    return plan


def vp_gap_ms(rng: random.Random, *, cadence: Cadence = "binance") -> int:
    """Milliseconds until a VP's next child."""
    if cadence == "fine":
        return 1000
    return rng.randint(*VP_GAP_MS)


def vp_share(
    rate: Decimal, volume_per_s: Decimal, gap_ms: int, rng: random.Random, *, cadence: Cadence
) -> Decimal:
    """What a VP child may take: its share of the volume traded over ``gap_ms``."""
    share = rate * volume_per_s * Decimal(gap_ms) / 1000
    if cadence == "fine":
        return share
    factor = Decimal(str(round(1 + rng.uniform(-VP_SIZE_JITTER, VP_SIZE_JITTER), 6)))
    return share * factor
