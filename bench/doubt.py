"""Orders in doubt under load: how long a backlog takes to drain with lost answers and a
lagging exchange, against the same load without faults.

The issue's scenario (issue 12): a fifth of the order answers lost after the order executed
(503 -1006 "execution status unknown"), and a read-after-write lag of ``--lag`` seconds
(10) on every read, so a look-up does not see a fresh order for that long. Each lost answer
leaves its order in doubt until a look-up finds it; the worker parks it meanwhile
(``PACEKEEPER_DOUBT_PATIENCE``) instead of holding a thread through the look-ups. The aim:
the faulty run drains in at most twice the time of the clean one.

Each run starts the fault battery's whole deployment (``tests/faults/stack.py``: real
processes on free ports, a private redis-server, SQLite, the paper exchange, the receiver,
two workers and the monitor), with the production read-after-write window
(``PACEKEEPER_RECONCILE_LAG_WINDOW`` 30 s, longer than the lag: a shorter one would prove
absent an order the lag still hides). It sends ``--signals`` market entries at ``--rate``
a second and waits until every acknowledged one is settled. It prints, for each run, the
time from the first signal to the last one settled, the drain after the last was sent, the
answers lost, and the ledger's verdict (placed, duplicates, lost), then the ratio. The clean
and faulty runs alternate, ``--rounds`` times each; the ratio is of their medians.

    .venv/bin/python bench/doubt.py                      # 300 signals, 1 round
    .venv/bin/python bench/doubt.py --signals 100 --rounds 3

Bounded: a few minutes (each run: the stack's start, signals / rate, the drain, at most
``--drain`` seconds). Starts its own redis-server; needs nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.conftest import SYMBOLS  # noqa: E402
from tests.faults.load import Load, entry, judge  # noqa: E402
from tests.faults.stack import Stack  # noqa: E402

ORDER = {"path": "/api/v3/order", "method": "POST"}


def one_run(faulty: bool, args: argparse.Namespace) -> tuple[float, float, int, str]:
    """(first signal -> last settled, drain after the last was sent, answers lost, verdict)."""
    with tempfile.TemporaryDirectory(prefix="pk-doubt-") as tmp:
        stack = Stack(Path(tmp), settings={"RECONCILE_LAG_WINDOW": "30"}).start()
        try:
            if faulty:
                stack.fault(action="fail_after", **ORDER, probability=args.lost, status=503,
                            code=-1006)  # fmt: skip
                stack.fault(action="read_lag", path="", seconds=args.lag)
            run = uuid.uuid4().hex[:6]
            bodies = [
                entry(f"doubt-{run}-{i}", secret=stack.webhook_secret, symbol=SYMBOLS[i % 2])
                for i in range(args.signals)
            ]
            started = time.monotonic()
            sent = Load(stack.api_url, rate=args.rate).run(bodies)
            verdict = judge("doubt", stack, sent, timeout=args.drain)
            total = time.monotonic() - started
            rules = stack.faults()["faults"]
            lost = sum(r["applied"] for r in rules if r["action"] == "fail_after")
            line = (
                f"placed {verdict.placed} dup {verdict.duplicates} lost {verdict.lost} "
                f"unsettled {verdict.unsettled} wrong {verdict.wrong}"
            )
            return total, verdict.drain_s, lost, line
        finally:
            stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="signals per second")
    parser.add_argument("--lost", type=float, default=0.2, help="share of answers lost")
    parser.add_argument("--lag", type=float, default=10.0, help="read-after-write lag, s")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--drain", type=float, default=300.0, help="longest drain, s")
    args = parser.parse_args()

    print(f"doubt: {args.signals} signals at {args.rate:g}/s, 2 workers, SQLite; faulty: "
          f"{args.lost:.0%} of order answers lost after executing, reads lag "
          f"{args.lag:g} s", flush=True)  # fmt: skip
    totals: dict[bool, list[float]] = {False: [], True: []}
    for n in range(args.rounds):
        for faulty in (False, True):
            total, drained, lost, line = one_run(faulty, args)
            totals[faulty].append(total)
            name = "faulty" if faulty else "clean "
            print(f"  round {n + 1} {name}: first signal -> last settled {total:6.1f} s, "
                  f"drain after the last sent {drained:5.1f} s, answers lost {lost:3d}; "
                  f"{line}", flush=True)  # fmt: skip
    clean, slow = statistics.median(totals[False]), statistics.median(totals[True])
    print(f"  medians: clean {clean:.1f} s, faulty {slow:.1f} s: faulty / clean "
          f"{slow / clean:.2f}x (aim <= 2x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
