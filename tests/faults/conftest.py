"""What every test of the fault battery shares: its size, the stack fixtures, the signals,
the fault hooks and the verdict check.

Each test starts the whole deployment (``stack.py``), sends N entry signals at 20 a second
(``PACEKEEPER_FAULTS_N``, 100 by default; ``make faults N=1000`` for the full size), injects
its fault at fixed points of the load, waits for every acknowledged signal to settle (with
a deadline) and holds the paper exchange's ledger against what was sent (``load.py``): 0
lost, 0 duplicates, 0 wrongly placed, 0 secrets leaked, nothing left unsettled. It prints
one line of figures. Pass or fail depends on counts only, never on timings.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.load import Verdict, entry
from tests.faults.stack import Stack
from tests.support import wait_until

N = int(os.environ.get("PACEKEEPER_FAULTS_N", "100"))
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RATE = 20.0
# The load lasts N / RATE seconds; the drain deadline is generous, and the same for all.
DRAIN = 120.0 + N / 10
TIMEOUT = 300 + N


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a stack with options (``Stack``'s ``database``, ``settings``); stopped after."""
    started: list[Stack] = []

    def make(**options: Any) -> Stack:
        stack = Stack(tmp_path, **options)
        started.append(stack)
        return stack.start()

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    def show(verdict: Verdict) -> None:
        with capsys.disabled():
            print(f"\n{verdict.line()}", flush=True)

    return show


def signals(stack: Stack, tag: str, n: int = N, **options: Any) -> list[dict[str, Any]]:
    """``n`` market entries (``entry`` options, e.g. ``limit``), BTC and ETH in turn."""
    run = uuid.uuid4().hex[:6]
    return [
        entry(f"{tag}-{run}-{i}", secret=stack.webhook_secret, symbol=SYMBOLS[i % 2], **options)
        for i in range(n)
    ]


def at(points: list[int], action: Any) -> Any:
    """A hook for Load.run that runs ``action`` when signal ``i`` of ``points`` is due."""

    def hook(index: int) -> None:
        if index in points:
            action(index)

    return hook


def in_background(action: Callable[[], object]) -> threading.Thread:
    """Run a fault that takes time (a stop, a wait) beside the load, which must go on."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def when_held(
    stack: Stack, rule_id: int, action: Callable[[], object], timeout: float = 30
) -> Callable[[], bool]:
    """A background watch: run ``action`` while the paper exchange holds a request under its
    latency rule ``rule_id`` (the stack announces the moment; the test does not guess it
    from a state that lasts milliseconds); returns a function that waits for the watch and
    tells whether the moment came."""
    hit = threading.Event()

    def holding() -> bool:
        rules = {r["id"]: r for r in stack.faults()["faults"]}
        return rule_id in rules and rules[rule_id]["holding"] > 0

    def watch() -> None:
        try:
            wait_until(holding, timeout=timeout, interval=0.01)
        except AssertionError:
            return
        action()
        hit.set()

    thread = in_background(watch)

    def done() -> bool:
        thread.join(timeout=timeout + 5)
        return hit.is_set()

    return done


def checked(verdict: Verdict, report: Any, stack: Stack) -> None:
    report(verdict)
    assert verdict.passed, f"{verdict.line()}\n(see {stack.workdir / 'stack.log'})"
    assert verdict.acked == verdict.sent - verdict.rejected
