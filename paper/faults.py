"""Fault switches for tests: latency, errors before or after executing, 429 then 418,
read-after-write lag and clock offset, each scoped by path prefix, method, count and
optionally one symbol (so that a test's fault reaches the request it means, not a monitor's
read of another symbol) or one API key (one account of several). A rule shows how many
requests its latency is holding right now (``holding``): a test can act at the moment a
request is in flight, instead of guessing it from its own side.

Rules are matched in the order they were added; timings are real seconds (they model the
network and Binance's servers, not the market clock).

A 429 starts a Retry-After window for its scope (the rule's path prefix, or the weight
limit's paths); a request under that scope inside the window earns a 418 ban, unless it
arrives within ``IN_FLIGHT_GRACE`` of the 429 (it was in flight: another 429). A ban earned
after a ``rate_limit`` rule's 429 is an IP ban of the host that answered it: until it ends
every path of that host answers 418. The paper serves two of Binance's hosts: the spot host
(``/api`` and ``/sapi``, api.binance.com) and the USD-M host (``/fapi``, fapi.binance.com),
whose limits and bans are separate, so a spot ban leaves ``/fapi`` answering and the other
way round. A ban earned after a spent weight budget stays within that budget's paths (each
``/sapi`` endpoint has its own budget, and Binance says ``/sapi`` never bans).

``served`` counts the 429 and 418 answers given since the last clear, so a test can show a
client never earned a ban.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["latency", "fail_before", "fail_after", "rate_limit", "read_lag", "clock_offset"]

CODE_MESSAGES = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests queued.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
}
TOO_MUCH_WEIGHT = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)


class FaultSpec(BaseModel):
    """Body of ``POST /paper/faults``."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    path: str = Field("", description="path prefix; empty matches every Binance path")
    symbol: str | None = Field(None, description="only requests whose symbol parameter is this")
    key: str | None = Field(None, description="only requests with this X-MBX-APIKEY")
    method: str | None = None
    count: int | None = Field(None, ge=1, description="apply this many times, then retire")
    probability: float = Field(1.0, ge=0, le=1)
    delay_ms: int = Field(0, ge=0)
    status: int = Field(500, ge=400, le=599)
    code: int | None = -1001
    msg: str | None = None
    raw_body: str | None = None
    retry_after: int = Field(1, ge=1)
    ban_seconds: int = Field(120, ge=1)
    seconds: float = Field(0.0, ge=0)
    offset_ms: int = 0


@dataclass
class Rule:
    id: int
    spec: FaultSpec
    applied: int = 0
    holding: int = 0  # requests this rule's latency is holding now

    def matches(self, method: str, path: str, params: Mapping[str, str], key: str | None) -> bool:
        if self.spec.count is not None and self.applied >= self.spec.count:
            return False
        if self.spec.method is not None and self.spec.method.upper() != method:
            return False
        if self.spec.method is None and self.spec.action == "read_lag" and method != "GET":
            return False
        if self.spec.symbol is not None and params.get("symbol") != self.spec.symbol:
            return False
        if self.spec.key is not None and key != self.spec.key:
            return False
        return path.startswith(self.spec.path)

    def view(self) -> dict[str, object]:
        return {"id": self.id, "applied": self.applied, "holding": self.holding,
                **self.spec.model_dump()}  # fmt: skip


@dataclass
class ErrorReply:
    status: int
    body: dict[str, object] | str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """What the faults do to one request."""

    delay_s: float = 0.0
    before: ErrorReply | None = None
    after: ErrorReply | None = None
    lag_s: float = 0.0
    holders: list[Rule] = field(default_factory=list)  # the latency rules that delay it


@dataclass
class Backoff:
    scope: str  # path prefix whose requests during the Retry-After window earn the ban
    retry_until: float
    banned_until: float = 0.0
    ban_seconds: int = 120
    ip_wide: bool = False  # the ban, once earned, covers every path of its host (an IP ban)
    host: str = ""  # "spot" or "fapi": the host whose IP ban this is (ip_wide only)
    answered_at: float = 0.0  # when the 429 was answered

    def covers(self, path: str) -> bool:
        """Whether a request for ``path`` in the Retry-After window earns this ban."""
        return path.startswith(self.scope) and (not self.ip_wide or self.host == host_of(path))


# Binance bans "repeated violations" after a 429 (binance-api.md §rate limits). A request that
# arrives within this long of the 429 was in flight when it was answered (another thread or
# process of the same caller): it gets a 429 too. One arriving later did not back off: a ban.
IN_FLIGHT_GRACE = 1.0


def host_of(path: str) -> str:
    """The Binance host a path belongs to: ``fapi`` (fapi.binance.com) or ``spot``."""
    return "fapi" if path.startswith("/fapi/") else "spot"


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._next_id = 1
        self.rules: list[Rule] = []
        self.backoffs: list[Backoff] = []
        self.served: Counter[int] = Counter()  # status (429, 418) -> answers given

    def add(self, spec: FaultSpec) -> Rule:
        with self._lock:
            rule = Rule(self._next_id, spec)
            self._next_id += 1
            self.rules.append(rule)
            return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rule_id]
            return len(self.rules) != before

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.backoffs.clear()
            self.served.clear()

    def views(self) -> list[dict[str, object]]:
        with self._lock:
            return [r.view() for r in self.rules]

    def served_counts(self) -> dict[str, int]:
        with self._lock:
            return {str(status): self.served[status] for status in (429, 418)}

    @property
    def clock_offset_ms(self) -> int:
        with self._lock:
            return sum(r.spec.offset_ms for r in self.rules if r.spec.action == "clock_offset")

    def start_backoff(self, scope: str, retry_after: int, ban_seconds: int = 120) -> None:
        with self._lock:
            self.served[429] += 1
            now = time.monotonic()
            self.backoffs.append(
                Backoff(scope, now + retry_after, 0.0, ban_seconds, answered_at=now)
            )

    @property
    def by_symbol(self) -> bool:
        """Whether a rule is scoped to a symbol (the request's parameters are then needed)."""
        with self._lock:
            return any(r.spec.symbol is not None for r in self.rules)

    def hold(self, plan: Plan, held: int) -> None:
        """Count a request in (``held=1``) or out of (``-1``) its latency rules' hold."""
        with self._lock:
            for rule in plan.holders:
                rule.holding += held

    def plan(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Plan:
        plan = Plan()
        now = time.monotonic()
        with self._lock:
            ban = self._check_backoff(path, now)
            if ban is not None:
                plan.before = ban
                return plan
            for rule in self.rules:
                spec = rule.spec
                if spec.action == "clock_offset" or not rule.matches(
                    method, path, params or {}, key
                ):
                    continue
                if spec.action in ("fail_before", "rate_limit") and plan.before is not None:
                    continue
                if spec.action == "fail_after" and plan.after is not None:
                    continue
                if self._rng.random() >= spec.probability:
                    continue
                rule.applied += 1
                if spec.action == "latency":
                    plan.delay_s += spec.delay_ms / 1000
                    plan.holders.append(rule)
                elif spec.action == "read_lag":
                    plan.lag_s = max(plan.lag_s, spec.seconds)
                elif spec.action == "fail_before":
                    plan.before = _error(spec)
                elif spec.action == "fail_after":
                    plan.after = _error(spec)
                else:  # rate_limit
                    self.served[429] += 1
                    retry_until = now + spec.retry_after
                    self.backoffs.append(
                        Backoff(spec.path, retry_until, 0.0, spec.ban_seconds, True,
                                host_of(path), answered_at=now)
                    )  # fmt: skip
                    plan.before = ErrorReply(
                        429,
                        {"code": -1003, "msg": TOO_MUCH_WEIGHT.format(limit=6000)},
                        {"Retry-After": str(spec.retry_after)},
                    )
        return plan

    def _check_backoff(self, path: str, now: float) -> ErrorReply | None:
        """418 for a caller that keeps going under a 429's scope during its Retry-After
        window, and for every path of the host while its IP ban lasts."""
        self.backoffs = [b for b in self.backoffs if max(b.retry_until, b.banned_until) > now]
        host = host_of(path)
        banned_until = max(
            (
                b.banned_until
                for b in self.backoffs
                if (b.ip_wide and b.host == host) or b.covers(path)
            ),
            default=0.0,
        )
        if banned_until <= now:
            for backoff in self.backoffs:
                if not backoff.covers(path):
                    continue
                if now - backoff.answered_at < IN_FLIGHT_GRACE:
                    # Sent before its caller could have read the 429 (in flight on another
                    # connection): rate limited again, not yet a caller that does not back off.
                    self.served[429] += 1
                    return ErrorReply(
                        429,
                        {"code": -1003, "msg": TOO_MUCH_WEIGHT.format(limit=6000)},
                        {"Retry-After": str(max(1, int(backoff.retry_until - now + 0.999)))},
                    )
                backoff.banned_until = now + backoff.ban_seconds
                banned_until = backoff.banned_until
                break
            else:
                return None
        self.served[418] += 1
        remaining = max(1, int(banned_until - now + 0.999))
        until_ms = int((time.time() + (banned_until - now)) * 1000)
        return ErrorReply(
            418,
            {"code": -1003, "msg": BANNED.format(until=until_ms)},
            {"Retry-After": str(remaining)},
        )


def _error(spec: FaultSpec) -> ErrorReply:
    if spec.code is None:
        return ErrorReply(spec.status, spec.raw_body or "Internal Server Error")
    msg = spec.msg or CODE_MESSAGES.get(
        spec.code, "Internal error; unable to process your request."
    )
    return ErrorReply(spec.status, {"code": spec.code, "msg": msg})
