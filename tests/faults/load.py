"""The load generator and the judge of the fault battery.

The load is an open loop: signal *i* is due at ``i / rate`` whatever happened to the ones
before. Each is sent like a careful sender would: a connection error, a 503 or a timeout is
sent again (same body, same id: idempotent) until an answer or the deadline. Each signal
ends ``ok`` (2xx: acknowledged, so it must be placed exactly once), ``fail`` (4xx: it must
place nothing) or ``info`` (no answer ever: it may be placed at most once).

The judge reads the paper exchange's ledger, the record of every order it accepted, and
counts against the acknowledged signals: placed, duplicates (a client id accepted more than
once), lost (acknowledged, nothing placed) and wrongly placed (an order no acknowledged
signal asked for). Orders a test placed on the exchange itself (``foreign``) are not ours
and are left out; a signal a test expects to be refused (``may_refuse``) is not counted as
refused. It also looks for the stack's secrets in its logs, database and Redis (canaries).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.exchange.ids import client_order_id
from tests.support import wait_until

RESEND = {408, 429, 500, 502, 503, 504}


# About 60 USDT each: over every minimum notional, a sliver of the paper balance.
QUANTITY = {"BTCUSDT": "0.001", "ETHUSDT": "0.02", "BNBUSDT": "0.05"}


def entry(sender_id: str, *, secret: str, symbol: str = "BTCUSDT", limit: str | None = None) -> Any:
    """A spot market entry (a GTC limit one at ``limit``) of its own strategy (so no guard
    links one signal to another)."""
    return {
        "secret": secret,
        "id": sender_id,
        "action": "entry",
        "symbol": symbol,
        "side": "buy",
        "quantity": QUANTITY[symbol],
        "execution": {"type": "limit", "price": limit} if limit else {"type": "market"},
        "strategy": f"faults-{sender_id}",
    }


@dataclass
class Sent:
    sender_id: str
    body: dict[str, Any]
    outcome: str = "info"  # ok, fail, info
    status: int | None = None
    signal_id: str | None = None
    duplicate: bool = False
    attempts: int = 0
    ack_seconds: float | None = None  # from due time to the answer that settled it


@dataclass
class Load:
    url: str
    rate: float = 20.0
    deadline: float = 60.0  # seconds a signal may be resent after it was due
    sent: list[Sent] = field(default_factory=list)

    async def _send(self, client: httpx.AsyncClient, item: Sent, due: float) -> None:
        pause = 0.1
        while time.monotonic() < due + self.deadline:
            item.attempts += 1
            try:
                response = await client.post(f"{self.url}/webhook", json=item.body)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code not in RESEND:
                item.status = response.status_code
                item.ack_seconds = time.monotonic() - due
                if response.is_success:
                    item.outcome = "ok"
                    answer = response.json()
                    item.signal_id, item.duplicate = answer["signal_id"], answer["duplicate"]
                else:
                    item.outcome = "fail"
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _run(
        self, bodies: list[dict[str, Any]], at_each: Callable[[int], object] | None
    ) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            start = time.monotonic()
            tasks = []
            for index, body in enumerate(bodies):
                due = start + index / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if at_each is not None:
                    at_each(index)  # where a test injects its fault
                item = Sent(str(body.get("id", "")), body)
                self.sent.append(item)
                tasks.append(asyncio.create_task(self._send(client, item, due)))
            await asyncio.gather(*tasks)

    def run(
        self, bodies: list[dict[str, Any]], at_each: Callable[[int], object] | None = None
    ) -> list[Sent]:
        first = len(self.sent)
        asyncio.run(self._run(bodies, at_each))
        return self.sent[first:]


@dataclass
class Verdict:
    name: str
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    info: int = 0
    placed: int = 0
    duplicates: int = 0
    lost: int = 0
    refused: int = 0  # acknowledged, then refused by a guard or the exchange, with a reason
    wrong: int = 0
    unsettled: int = 0
    canaries: int = 0  # a secret found in the logs, the database or Redis
    drain_s: float = 0.0
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (
            self.duplicates
            or self.lost
            or self.wrong
            or self.unsettled
            or self.refused
            or self.canaries
        )

    def line(self) -> str:
        extra = "".join(f" {k} {v}" for k, v in self.extra.items())
        return (
            f"faults {self.name:<15} {'PASS' if self.passed else 'FAIL'}: sent {self.sent}"
            f" acked {self.acked} rejected {self.rejected} info {self.info}"
            f" placed {self.placed} dup {self.duplicates} lost {self.lost}"
            f" refused {self.refused} wrong {self.wrong}"
            f" unsettled {self.unsettled} canaries {self.canaries} drain {self.drain_s:.1f}s"
            f" ack p50 {self.ack_p50_ms:.0f}ms p99 {self.ack_p99_ms:.0f}ms{extra}"
        )


def drain(stack: Any, signal_ids: list[str], timeout: float) -> tuple[float, int]:
    """Wait until every acknowledged signal is settled; (seconds, still unsettled)."""
    started = time.monotonic()
    with suppress(AssertionError):  # the deadline passed: the verdict counts what is left
        wait_until(lambda: stack.unsettled(signal_ids) == 0, timeout=timeout, interval=0.2)
    return time.monotonic() - started, stack.unsettled(signal_ids)


def judge(
    name: str,
    stack: Any,
    sent: list[Sent],
    *,
    timeout: float,
    foreign: frozenset[int] = frozenset(),
    may_refuse: frozenset[str] = frozenset(),
) -> Verdict:
    """Wait for the drain, then hold the ledger against every signal sent; ``foreign`` are
    exchange order ids a test placed itself, ``may_refuse`` signal ids it expects refused."""
    acked = {s.signal_id for s in sent if s.outcome == "ok" and s.signal_id}
    drain_s, unsettled = drain(stack, sorted(acked), timeout)
    verdict = Verdict(name, sent=len(sent), drain_s=drain_s, unsettled=unsettled)
    verdict.acked = sum(1 for s in sent if s.outcome == "ok")
    verdict.rejected = sum(1 for s in sent if s.outcome == "fail")
    verdict.info = sum(1 for s in sent if s.outcome == "info")
    latencies = sorted(s.ack_seconds * 1000 for s in sent if s.ack_seconds is not None)
    if latencies:
        verdict.ack_p50_ms = statistics.median(latencies)
        verdict.ack_p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    ledger = [e for e in stack.ledger() if e["kind"] == "spot_order" and e["id"] not in foreign]
    per_client = Counter(e["client_id"] for e in ledger)
    expected = {client_order_id(sid, "entry") for sid in acked}
    # A signal never answered may have been stored: it may be placed, at most once.
    maybe = {
        client_order_id(found, "entry")
        for s in sent
        if s.outcome == "info" and (found := stack.signal_by_sender_id(s.sender_id))
    }
    verdict.placed = sum(1 for cid in expected if per_client[cid])
    statuses = stack.statuses()
    refused = {sid for sid in acked if statuses.get(sid) in ("refused", "failed")}
    verdict.refused = len(refused - may_refuse)
    # Lost: acknowledged, and neither placed nor refused with a reason.
    verdict.lost = len(expected) - verdict.placed - len(refused)
    verdict.duplicates = sum(n - 1 for n in per_client.values() if n > 1)
    verdict.wrong = sum(n for cid, n in per_client.items() if cid not in expected | maybe)
    verdict.canaries = sum(stack.canary_hits().values())
    return verdict
