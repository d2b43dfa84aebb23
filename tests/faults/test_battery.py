"""The fault battery: the real processes under load, one fault each, judged by the ledger.

Each test starts the whole deployment (``stack.py``), sends N entry signals at 20 a second
(``PACEKEEPER_FAULTS_N``, 100 by default; ``make faults N=1000`` for the full size),
injects its fault at fixed points of the load, waits for every acknowledged signal to
settle (with a deadline) and holds the paper exchange's ledger against what was sent
(``load.py``): 0 lost, 0 duplicates, 0 wrongly placed, nothing left unsettled. It prints
one line of figures. Pass or fail depends on counts only, never on timings.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.load import Load, Sent, Verdict, entry, judge
from tests.faults.stack import Stack
from tests.support import wait_until

N = int(os.environ.get("PACEKEEPER_FAULTS_N", "100"))
RATE = 20.0
# The load lasts N / RATE seconds; the drain deadline is generous, and the same for all.
DRAIN = 120.0 + N / 10
pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(300 + N)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    def show(verdict: Verdict) -> None:
        with capsys.disabled():
            print(f"\n{verdict.line()}", flush=True)

    return show


def signals(tag: str, n: int = N) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:6]
    return [entry(f"{tag}-{run}-{i}", symbol="ETHUSDT" if i % 2 else "BTCUSDT") for i in range(n)]


def at(points: list[int], action: Any) -> Any:
    """A hook for Load.run that runs ``action`` when signal ``i`` of ``points`` is due."""

    def hook(index: int) -> None:
        if index in points:
            action(index)

    return hook


def checked(verdict: Verdict, report: Any, stack: Stack) -> None:
    report(verdict)
    assert verdict.passed, f"{verdict.line()}\n(see {stack.workdir / 'stack.log'})"
    assert verdict.acked == verdict.sent - verdict.rejected


def test_baseline(stack: Stack, report: Any) -> None:
    """No fault; /health/ready is polled meanwhile (a figure: busy is not unready)."""
    polls: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=10) as http:
            while not done.wait(0.25):
                polls.append(http.get(f"{stack.api_url}/health/ready").status_code)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        sent = Load(stack.api_url, rate=RATE).run(signals("base"))
    finally:
        done.set()
        poller.join(timeout=15)
    verdict = judge("baseline", stack, sent, timeout=DRAIN)
    verdict.extra = {"ready_polls": len(polls), "unready": sum(1 for c in polls if c != 200)}
    checked(verdict, report, stack)
    assert verdict.rejected == 0 and verdict.placed == N


def test_duplicate_storm(stack: Stack, report: Any) -> None:
    """Every signal three times (once, then twice at once), every tenth again with another
    body under its id, and a tenth signed with a wrong secret: one order per signal."""
    originals = signals("dup")
    changed = [{**body, "quantity": "0.002"} for body in originals[::10]]
    forged = [entry(f"forged-{uuid.uuid4().hex[:8]}", secret="x" * 32) for _ in range(N // 10)]
    load = Load(stack.api_url, rate=RATE)
    first = load.run(originals + forged)

    async def copies() -> list[list[Sent]]:
        async def twice(body: dict[str, Any]) -> list[Sent]:
            pair = await asyncio.gather(
                asyncio.to_thread(Load(stack.api_url, rate=1000).run, [body]),
                asyncio.to_thread(Load(stack.api_url, rate=1000).run, [body]),
            )
            return [s for sent in pair for s in sent]

        return [await twice(body) for body in originals]

    repeats = [s for pair in asyncio.run(copies()) for s in pair]
    conflicts = Load(stack.api_url, rate=RATE).run(changed)

    verdict = judge("duplicates", stack, first + repeats + conflicts, timeout=DRAIN)
    by_id = {s.sender_id: s.signal_id for s in first if s.outcome == "ok"}
    verdict.extra = {
        "repeats_200": sum(1 for s in repeats if s.status == 200 and s.duplicate),
        "conflicts_409": sum(1 for s in conflicts if s.status == 409),
        "forged_401": sum(1 for s in first if s.status == 401),
    }
    checked(verdict, report, stack)
    assert all(s.status == 200 and s.signal_id == by_id[s.sender_id] for s in repeats)
    assert verdict.extra["conflicts_409"] == len(changed)
    assert verdict.extra["forged_401"] == len(forged)
    assert verdict.placed == N


def test_worker_sigkill(stack: Stack, report: Any) -> None:
    """SIGKILL a worker at a quarter, half and three quarters of the load (its supervisor
    starts it again): whatever it was doing is taken over and done once."""
    kills: list[int] = []

    def kill(index: int) -> None:
        kills.append(stack.kill(f"worker{1 + len(kills) % 2}"))

    sent = Load(stack.api_url, rate=RATE).run(
        signals("wkill"), at([N // 4, N // 2, 3 * N // 4], kill)
    )
    verdict = judge("worker-kill", stack, sent, timeout=DRAIN)
    verdict.extra = {"kills": len(kills)}
    checked(verdict, report, stack)
    assert verdict.placed == N


def test_redis_sigkill_and_restart(stack: Stack, report: Any) -> None:
    """SIGKILL Redis mid-burst; it is started again on its AOF. The processes wait for it,
    the sweeper finds every job the crash took, and all drains by itself."""
    killed: list[int] = []
    sent = Load(stack.api_url, rate=RATE).run(
        signals("rkill"), at([N // 3], lambda i: killed.append(stack.kill("redis")))
    )
    verdict = judge("redis-kill", stack, sent, timeout=DRAIN)
    verdict.extra = {"redis_restarts": stack.supervisor.restarts.get("redis", 0)}
    checked(verdict, report, stack)
    assert verdict.placed == N and verdict.extra["redis_restarts"] == 1
    # Nobody gave up: no process other than Redis had to be started again.
    assert set(stack.supervisor.restarts) == {"redis"}


def test_receiver_sigkill(stack: Stack, report: Any) -> None:
    """SIGKILL the receiver at a third and two thirds of the load; senders send again what
    got no answer. A signal acknowledged before the kill is not lost, one sent again after
    it is not placed twice."""
    kills: list[int] = []
    sent = Load(stack.api_url, rate=RATE).run(
        signals("akill"), at([N // 3, 2 * N // 3], lambda i: kills.append(stack.kill("api")))
    )
    verdict = judge("receiver-kill", stack, sent, timeout=DRAIN)
    verdict.extra = {"kills": len(kills), "resent": sum(1 for s in sent if s.attempts > 1)}
    checked(verdict, report, stack)
    assert verdict.placed == N
    with httpx.Client(timeout=5) as http:
        wait_until(lambda: http.get(f"{stack.api_url}/health").status_code == 200, timeout=30)
