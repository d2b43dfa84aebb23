"""Metrics: every ``pacekeeper_*`` figure ``GET /metrics`` shows, and where it comes from.

The receiver, the workers (several, on several machines) and the monitor are separate
processes, so prometheus_client's multiprocess mode (mmap files in one directory on one host)
does not fit. Each figure lives where it is already shared, and the receiver renders them all
when scraped:

- **the database**, queried at scrape time by :class:`DatabaseCollector` (GROUP BY over
  indexed columns): signals by status and reason, orders by kind and status, working algos,
  algo cancels by reason (``cancel`` events), the kill switch;
- **Redis**, where every process adds to a few hashes through :class:`MetricsRecorder`
  (HINCRBY, histograms as per-bucket counts) and :class:`RedisCollector` renders them:
  exchange calls by endpoint and code with their latency (recorded by the exchange client's
  call observer) and the monitor's cycle time; plus what Redis holds anyway: the rate-limit
  governor's used weight, the queue and its live workers;
- **this process**: the receiver's own webhook answers by outcome and their ack latency
  (:class:`WebhookMetrics`, fed by a middleware: two clock reads and one observation).

Metric names (counters get ``_total``)::

    pacekeeper_webhook_requests_total{outcome,reason}   this receiver's answers to POST /webhook
    pacekeeper_webhook_ack_seconds                      time to answer POST /webhook (histogram)
    pacekeeper_signals{status,reason}                   stored signals by status (reason: why it
                                                        failed, was refused, cancelled, expired)
    pacekeeper_orders{kind,status,account}              orders by kind, status and account
    pacekeeper_working_algos{market,kind,account}       TWAP/VP orders working on the venue
    pacekeeper_algo_cancels_total{reason,account}       algo cancels: behind_schedule, stalled,
                                                        expiry, operator, halt
    pacekeeper_halted{account}                          1 while the kill switch stops the
                                                        account's new entries (its own halt or
                                                        the halt of every account)
    pacekeeper_exchange_requests_total{endpoint,code,account}
                                                        exchange calls; code "ok", a Binance
                                                        error code, "http_<status>", "not_sent"
                                                        or "no_answer"; account: the named
                                                        account whose key made the call
    pacekeeper_exchange_request_seconds{endpoint}       exchange call latency (histogram)
    pacekeeper_exchange_used_weight{bucket,account}     request weight used this minute
    pacekeeper_exchange_weight_limit{bucket,account}    the bucket's budget per minute; account
                                                        is empty for the IP's buckets (shared
                                                        by every key), named for an account's
                                                        own UID-limited /sapi buckets
    pacekeeper_exchange_banned_seconds                  seconds left of an IP ban (418)
    pacekeeper_monitor_cycle_seconds                    monitor cycle duration (histogram)
    pacekeeper_monitor_last_cycle_timestamp_seconds     Unix time of the last successful cycle
    pacekeeper_queue_jobs                               jobs waiting on the queue
    pacekeeper_queue_oldest_job_age_seconds             age of the oldest waiting job
    pacekeeper_workers                                  live RQ workers for the queue
    pacekeeper_metrics_source_up{source}                0 when a source could not be read
                                                        (what this receiver sees down now)
    pacekeeper_outages_total{process,component}         outages of redis or the database a
                                                        worker or the monitor rode out
    pacekeeper_outage_seconds_total{process,component}  their length, summed
    pacekeeper_slippage_bps{against}                    a signal's average fill price against
                                                        the arrival price or the window's VWAP,
                                                        in bps, positive = a cost (histogram)
    pacekeeper_execution_step_seconds{step}             seconds from receipt to queued, first
                                                        order, first fill, last fill (histogram)

``account`` is the named account (``app/accounts.py``) an order, a cancel or a call belongs
to: ``default`` in a deployment with one key. Every configured account has its
``pacekeeper_halted`` and UID weight series, even at 0.

Redis counters are cumulative since the keys were made (they survive restarts; Prometheus's
``rate()`` copes with any reset). They are namespaced by the queue name, so deployments that
share a Redis keep their figures apart.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.accounts import DEFAULT_ACCOUNT, account_names
from app.exchange.ratelimit import RateGovernor, RedisRateStore
from app.models import ALGO_KINDS, Event, Order, OrderStatus, Signal, SignalStatus

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.engine import Engine

    from app.config import Settings
    from app.exchange.session import CallObserver

log = logging.getLogger(__name__)

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EXCHANGE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MONITOR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SLIPPAGE_BUCKETS = (-50.0, -20.0, -10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# The kinds of the event recorded when an algo is cancelled: the cause. The monitor cancels
# for "pace" (data "state": behind_schedule or stalled) or "expiry"; the admin API for
# "operator" or "halt" (halt with cancel_working).
CANCEL_EVENT_KINDS = ("pace", "expiry", "operator", "halt")
# Statuses whose signals carry a reason worth counting.
REASONED_STATUSES = (
    SignalStatus.FAILED,
    SignalStatus.REFUSED,
    SignalStatus.CANCELLED,
    SignalStatus.EXPIRED,
)
# Free-text reasons are cut to a short label, and only the most frequent ones get a series.
MAX_REASON_LABELS = 30
MAX_REASON_CHARS = 40

# Redis hashes (after the prefix): requests "<endpoint>|<code>"; histograms "<label>|<bucket
# index>" and "<label>|sum".
EXCHANGE_REQUESTS = "exchange_requests"
EXCHANGE_LATENCY = "exchange_latency"
MONITOR_CYCLE = "monitor_cycle"
OUTAGES = "outages"
SLIPPAGE = "slippage_bps"
STEP_DELAYS = "execution_steps"


def key_prefix(settings: Settings) -> str:
    """The Redis key prefix of one deployment's metrics."""
    return f"pacekeeper:metrics:{settings.queue_name}:"


def exchange_observer(
    redis: Redis | None, settings: Settings, account: str = ""
) -> CallObserver | None:
    """A client's ``observer`` that counts each of its calls in the shared metrics, under
    ``account`` (empty: the default account); None without Redis (nothing is counted)."""
    if redis is None:
        return None
    recorder = MetricsRecorder.for_settings(redis, settings)
    return functools.partial(recorder.exchange_call, account=account or "default")


def reason_label(reason: str | None) -> str:
    """A short, stable label for a free-text reason: the part before the first colon."""
    if not reason:
        return ""
    head = reason.split(":", 1)[0].strip().lower()
    label = re.sub(r"[^a-z0-9]+", "_", head).strip("_")
    return label[:MAX_REASON_CHARS] or "other"


def cancel_reason(kind: str, data: dict[str, Any] | None) -> str:
    """The reason label of a cancel event: the pace verdict for pace cancels, else the cause."""
    if kind == "pace" and isinstance(data, dict) and data.get("state"):
        return reason_label(str(data["state"]))
    return kind


def _bucket_index(seconds: float, buckets: Sequence[float]) -> int:
    for index, bound in enumerate(buckets):
        if seconds <= bound:
            return index
    return len(buckets)


# ---- writing: every process ----------------------------------------------------------------


class MetricsRecorder:
    """Adds to the Redis hashes behind the cross-process metrics; never raises into the caller.

    After a Redis failure it stays silent for ``retry_after`` seconds, so a Redis outage costs
    the exchange client one failed write, not one per call.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings) -> MetricsRecorder:
        return cls(redis, key_prefix(settings))

    def exchange_call(
        self, method: str, path: str, code: str, seconds: float, account: str = "default"
    ) -> None:
        """One request to the exchange: its endpoint, outcome code, account and round-trip
        time."""
        endpoint = f"{method} {path}"
        self._write(
            [
                (EXCHANGE_REQUESTS, f"{endpoint}|{code}|{account}", 1),
                *self._histogram(EXCHANGE_LATENCY, endpoint, seconds, EXCHANGE_BUCKETS),
            ]
        )

    def monitor_cycle(self, seconds: float) -> None:
        """One monitor cycle and how long it took."""
        self._write(self._histogram(MONITOR_CYCLE, "", seconds, MONITOR_BUCKETS))

    def execution_quality(
        self, slippage: dict[str, float | None], delays: dict[str, float | None]
    ) -> None:
        """One signal's execution figures (``app.execution.quality``), recorded once."""
        increments: list[tuple[str, str, float]] = []
        for against, bps in slippage.items():
            if bps is not None:
                increments += self._histogram(SLIPPAGE, against, bps, SLIPPAGE_BUCKETS)
        for step, seconds in delays.items():
            if seconds is not None:
                increments += self._histogram(STEP_DELAYS, step, seconds, STEP_BUCKETS)
        if increments:
            self._write(increments)

    def outage(self, process: str, component: str, seconds: float) -> None:
        """An outage of ``component`` that ``process`` waited out (written once it is over)."""
        label = f"{process}|{component}"
        self._write([(OUTAGES, f"{label}|count", 1), (OUTAGES, f"{label}|sum", seconds)])

    @staticmethod
    def _histogram(
        key: str, label: str, seconds: float, buckets: Sequence[float]
    ) -> list[tuple[str, str, float]]:
        index = _bucket_index(seconds, buckets)
        return [(key, f"{label}|{index}", 1), (key, f"{label}|sum", seconds)]

    def _write(self, increments: list[tuple[str, str, float]]) -> None:
        if self._clock() < self._down_until:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for key, field, amount in increments:
                    if isinstance(amount, int):
                        pipe.hincrby(self._prefix + key, field, amount)
                    else:
                        pipe.hincrbyfloat(self._prefix + key, field, amount)
                pipe.execute()
        except Exception as exc:  # metrics must never break an order or a monitor cycle
            self._down_until = self._clock() + self._retry_after
            log.warning("metrics not recorded for %.0fs: %s", self._retry_after, type(exc).__name__)


# ---- reading: the receiver -----------------------------------------------------------------


class WebhookMetrics:
    """This receiver's answers to ``POST /webhook``, counted in process."""

    # HTTP status -> (outcome, reason); anything else is an error named by its status.
    OUTCOMES = {
        202: ("accepted", ""),
        200: ("duplicate", ""),
        400: ("rejected", "bad_request"),
        401: ("rejected", "unauthorized"),
        408: ("rejected", "body_too_slow"),
        409: ("rejected", "conflict"),
        413: ("rejected", "payload_too_large"),
        415: ("rejected", "unsupported_media_type"),
        422: ("rejected", "invalid"),
        429: ("rejected", "rate_limited"),
        503: ("error", "unavailable"),
    }

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pacekeeper_webhook_requests",
            "Answers to POST /webhook by outcome (accepted, duplicate, rejected, error) and reason",
            ["outcome", "reason"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "pacekeeper_webhook_ack_seconds",
            "Time from receiving POST /webhook to starting the answer",
            buckets=ACK_BUCKETS,
            registry=registry,
        )

    def observe(self, status: int, seconds: float) -> None:
        outcome, reason = self.OUTCOMES.get(
            status, ("error", f"http_{status}") if status >= 500 else ("rejected", f"http_{status}")
        )
        self.requests.labels(outcome, reason).inc()
        self.ack_seconds.observe(seconds)


def _outages(raw: dict[Any, Any]) -> list[Metric]:
    count = CounterMetricFamily(
        "pacekeeper_outages",
        "Outages of a component that a worker or the monitor waited out",
        labels=["process", "component"],
    )
    length = CounterMetricFamily(
        "pacekeeper_outage_seconds",
        "Time spent waiting for a component to answer again",
        labels=["process", "component"],
    )
    for field, value in sorted(raw.items()):
        process, component, kind = _decode(field).split("|")
        if kind == "count":
            count.add_metric([process, component], int(value))
        else:
            length.add_metric([process, component], float(value))
    return [count, length]


def _source_up(source: str, up: bool) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "pacekeeper_metrics_source_up",
        "1 when the source behind a group of metrics could be read for this scrape",
        labels=["source"],
    )
    gauge.add_metric([source], 1 if up else 0)
    return gauge


class DatabaseCollector(Collector):
    """Counts that live in the database, queried when scraped."""

    def __init__(
        self, engine: Callable[[], Engine | None], accounts: Sequence[str] = (DEFAULT_ACCOUNT,)
    ) -> None:
        self._engine = engine
        self._accounts = list(accounts)

    def collect(self) -> Iterator[Metric]:
        engine = self._engine()
        if engine is None:
            return
        try:
            families = self._families(engine)
        except Exception as exc:
            log.warning("metrics: database unavailable: %s", type(exc).__name__)
            yield _source_up("database", False)
            return
        yield from families
        yield _source_up("database", True)

    def _families(self, engine: Engine) -> list[Metric]:
        from app.controls import HALT_KEY
        from app.models import Control

        with engine.connect() as conn:
            by_status = conn.execute(
                select(Signal.status, func.count()).group_by(Signal.status)
            ).all()
            reasoned = conn.execute(
                select(Signal.status, Signal.status_reason, func.count())
                .where(Signal.status.in_([s.value for s in REASONED_STATUSES]))
                .group_by(Signal.status, Signal.status_reason)
            ).all()
            orders = conn.execute(
                select(Order.kind, Order.status, Order.account, func.count()).group_by(
                    Order.kind, Order.status, Order.account
                )
            ).all()
            working = conn.execute(
                select(Order.market, Order.kind, Order.account, func.count())
                .where(Order.status == OrderStatus.WORKING.value, Order.kind.in_(ALGO_KINDS))
                .group_by(Order.market, Order.kind, Order.account)
            ).all()
            # A cancel event is about one order (the kill switch's own "halt" event is not).
            cancels = conn.execute(
                select(Event.kind, Event.data, Order.account)
                .join(Order, Event.order_id == Order.id)
                .where(Event.kind.in_(CANCEL_EVENT_KINDS))
            ).all()
            cancel_reasons = Tally(
                (cancel_reason(kind, data), account) for kind, data, account in cancels
            )
            halts: dict[str, Any] = dict(
                conn.execute(
                    select(Control.key, Control.value).where(
                        (Control.key == HALT_KEY) | Control.key.startswith(f"{HALT_KEY}:")
                    )
                ).all()
            )

        signals = GaugeMetricFamily(
            "pacekeeper_signals",
            "Stored signals by status; reason says why one failed, was refused, cancelled or "
            "expired",
            labels=["status", "reason"],
        )
        reasons = Tally[tuple[str, str]]()
        for status, reason, count in reasoned:
            reasons[(status, reason_label(reason))] += count
        kept = dict(reasons.most_common(MAX_REASON_LABELS))
        for (status, label), count in reasons.items():
            if (status, label) not in kept:
                kept[(status, "other")] = kept.get((status, "other"), 0) + count
        reasoned_total = Tally[str]()
        for (status, label), count in kept.items():
            signals.add_metric([status, label], count)
            reasoned_total[status] += count
        for status, count in by_status:
            if count - reasoned_total[status] > 0:
                signals.add_metric([status, ""], count - reasoned_total[status])

        order_gauge = GaugeMetricFamily(
            "pacekeeper_orders",
            "Orders by kind, status and account",
            labels=["kind", "status", "account"],
        )
        for kind, status, account, count in orders:
            order_gauge.add_metric([kind, status, account], count)

        working_gauge = GaugeMetricFamily(
            "pacekeeper_working_algos",
            "TWAP and VP orders working on the venue, by account",
            labels=["market", "kind", "account"],
        )
        for market, kind, account, count in working:
            working_gauge.add_metric([market, kind, account], count)

        cancel_counter = CounterMetricFamily(
            "pacekeeper_algo_cancels",
            "Algo orders cancelled, by reason and account",
            labels=["reason", "account"],
        )
        for (reason, account), count in sorted(cancel_reasons.items()):
            cancel_counter.add_metric([reason, account], count)

        halted = GaugeMetricFamily(
            "pacekeeper_halted",
            "1 while the kill switch stops the account's new entries (its own halt or every "
            "account's)",
            labels=["account"],
        )
        for account, stopped in _halted(halts, self._accounts).items():
            halted.add_metric([account], 1 if stopped else 0)
        return [signals, order_gauge, working_gauge, cancel_counter, halted]


def _halted(halts: dict[str, Any], accounts: Sequence[str]) -> dict[str, bool]:
    """Per account, whether new entries are stopped: the configured accounts, and any other
    account still halted (by its ``halt:<account>`` control row)."""
    from app.controls import HALT_KEY

    def active(value: Any) -> bool:
        return isinstance(value, dict) and bool(value.get("active"))

    every = active(halts.get(HALT_KEY))
    names = dict.fromkeys(accounts)
    names.update(
        dict.fromkeys(
            key.split(":", 1)[1] for key, value in halts.items() if ":" in key and active(value)
        )
    )
    return {name: every or active(halts.get(f"{HALT_KEY}:{name}")) for name in names}


def queue_figures(redis: Redis, queue_name: str, *, now: float | None = None) -> dict[str, Any]:
    """Jobs waiting on the queue, the age in seconds of the oldest one, and live workers."""
    from rq import Queue, Worker
    from rq.job import Job
    from rq.serializers import JSONSerializer

    queue = Queue(queue_name, connection=redis, serializer=JSONSerializer)
    depth = queue.count
    oldest_age: float | None = None
    for job in Job.fetch_many(queue.get_job_ids(0, 1), connection=redis, serializer=JSONSerializer):
        if job is not None and job.enqueued_at is not None:
            enqueued = job.enqueued_at
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=UTC)
            current = time.time() if now is None else now
            oldest_age = round(max(0.0, current - enqueued.timestamp()), 3)
    workers = len(Worker.all(queue=queue))
    return {"depth": depth, "oldest_job_age": oldest_age, "workers": workers}


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _histograms(
    name: str,
    documentation: str,
    raw: dict[Any, Any],
    buckets: Sequence[float],
    label_name: str | None,
) -> HistogramMetricFamily:
    """Render per-bucket counts stored as "<label>|<index>" and "<label>|sum" fields."""
    counts: dict[str, list[int]] = {}
    sums: dict[str, float] = {}
    for field, value in raw.items():
        label, _, part = _decode(field).rpartition("|")
        if part == "sum":
            sums[label] = float(value)
        elif part.isdigit() and int(part) <= len(buckets):
            counts.setdefault(label, [0] * (len(buckets) + 1))[int(part)] += int(value)
    family = HistogramMetricFamily(name, documentation, labels=[label_name] if label_name else None)
    for label in sorted(counts):
        cumulative, points = 0, []
        for bound, count in zip([*map(str, buckets), "+Inf"], counts[label], strict=True):
            cumulative += count
            points.append((bound, cumulative))
        family.add_metric([label] if label_name else [], points, sums.get(label, 0.0))
    return family


class RedisCollector(Collector):
    """What every process adds up in Redis, and what Redis knows: weight, queue, workers."""

    def __init__(self, redis: Callable[[], Redis | None], settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = key_prefix(settings)

    def collect(self) -> Iterator[Metric]:
        redis = self._redis()
        if redis is None:
            return
        try:
            families = self._families(redis)
        except Exception as exc:
            log.warning("metrics: redis unavailable: %s", type(exc).__name__)
            yield _source_up("redis", False)
            return
        yield from families
        yield _source_up("redis", True)

    def _families(self, redis: Redis) -> list[Metric]:
        from app.healthcheck import monitor_heartbeat_key

        with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._prefix + EXCHANGE_REQUESTS)
            pipe.hgetall(self._prefix + EXCHANGE_LATENCY)
            pipe.hgetall(self._prefix + MONITOR_CYCLE)
            pipe.get(monitor_heartbeat_key(self._settings.queue_name))
            pipe.hgetall(self._prefix + OUTAGES)
            pipe.hgetall(self._prefix + SLIPPAGE)
            pipe.hgetall(self._prefix + STEP_DELAYS)
            requests, latency, cycles, last_cycle, outages, slippage, steps = pipe.execute()

        out: list[Metric] = []
        calls = CounterMetricFamily(
            "pacekeeper_exchange_requests",
            "Requests to the exchange by endpoint, outcome code and account",
            labels=["endpoint", "code", "account"],
        )
        for field, value in sorted(requests.items()):
            endpoint, code, *account = _decode(field).split("|")
            calls.add_metric([endpoint, code, account[0] if account else "default"], int(value))
        out.append(calls)
        out.append(
            _histograms(
                "pacekeeper_exchange_request_seconds",
                "Round-trip time of exchange requests",
                latency,
                EXCHANGE_BUCKETS,
                "endpoint",
            )
        )
        out.append(
            _histograms(
                "pacekeeper_monitor_cycle_seconds",
                "Duration of monitor cycles",
                cycles,
                MONITOR_BUCKETS,
                None,
            )
        )
        out.append(
            _histograms(
                "pacekeeper_slippage_bps",
                "Average fill price against the arrival price or the execution window's VWAP, "
                "in basis points; positive is a cost",
                slippage,
                SLIPPAGE_BUCKETS,
                "against",
            )
        )
        out.append(
            _histograms(
                "pacekeeper_execution_step_seconds",
                "Seconds from a signal's receipt to each step: queued, first_order, "
                "first_fill, last_fill",
                steps,
                STEP_BUCKETS,
                "step",
            )
        )
        if last_cycle is not None:
            gauge = GaugeMetricFamily(
                "pacekeeper_monitor_last_cycle_timestamp_seconds",
                "Unix time of the monitor's last successful cycle",
            )
            gauge.add_metric([], float(last_cycle))
            out.append(gauge)
        out.extend(_outages(outages))
        out.extend(self._weight(redis))
        out.extend(self._queue(queue_figures(redis, self._settings.queue_name)))
        return out

    def _weight(self, redis: Redis) -> list[Metric]:
        store = RedisRateStore(redis, self._settings.rate_limit_prefix)
        snapshot = RateGovernor(store).snapshot()
        used = GaugeMetricFamily(
            "pacekeeper_exchange_used_weight",
            "Request weight used in the current minute, shared by every process; account: "
            "empty for the IP's buckets, named for an account's own UID buckets",
            labels=["bucket", "account"],
        )
        limit = GaugeMetricFamily(
            "pacekeeper_exchange_weight_limit",
            "Request weight budget per minute",
            labels=["bucket", "account"],
        )
        for bucket, figures in snapshot["buckets"].items():
            used.add_metric([bucket, ""], figures["used"])
            limit.add_metric([bucket, ""], figures["limit"])
        for account in account_names(self._settings):
            # The governor keeps the account default's UID buckets under no name.
            governor = RateGovernor(store, account="" if account == DEFAULT_ACCOUNT else account)
            for bucket, figures in governor.uid_usage().items():
                used.add_metric([bucket, account], figures["used"])
                limit.add_metric([bucket, account], figures["limit"])
        banned = GaugeMetricFamily(
            "pacekeeper_exchange_banned_seconds", "Seconds left of an IP ban (HTTP 418)"
        )
        banned.add_metric([], snapshot["banned_for"])
        return [used, limit, banned]

    @staticmethod
    def _queue(figures: dict[str, Any]) -> list[Metric]:
        depth = GaugeMetricFamily("pacekeeper_queue_jobs", "Jobs waiting on the queue")
        depth.add_metric([], figures["depth"])
        age = GaugeMetricFamily(
            "pacekeeper_queue_oldest_job_age_seconds", "Age of the oldest waiting job"
        )
        age.add_metric([], figures.get("oldest_job_age") or 0.0)
        workers = GaugeMetricFamily("pacekeeper_workers", "Live RQ workers for the queue")
        workers.add_metric([], figures["workers"])
        return [depth, age, workers]
