"""``pacekeeper worker``: an RQ worker that runs monitor jobs first, then signal jobs, then
notifications, many at once, through outages.

The worker class is based on :class:`rq.SimpleWorker`: jobs run in the worker process
itself, with no ``fork()`` per job. A fork costs milliseconds on every signal and throws
away the per-process resources (database pool, Redis connection, the exchange client's
kept-alive HTTPS connections and cached exchangeInfo) that make a job fast. The price is
that a job which kills the process kills the worker; the job is then recovered like any
abandoned job (RQ's StartedJobRegistry cleanup, and the intake sweeper for its signal), and
its orders are protected by client-id reconciliation, so nothing is placed twice.

Jobs run on a pool of ``PACEKEEPER_WORKER_CONCURRENCY`` threads (50 by default: a burst of
50 alerts goes out together). A job spends nearly all its time waiting for the exchange,
so threads cost little beside a process each. The main thread takes a job from Redis only
when a thread is free for it, so what a worker holds is always running; RQ's per-job
bookkeeping (executions, StartedJobRegistry) already allows several jobs per worker. What
may not run side by side is decided by the jobs, not the worker: two runs of one signal
by its claim (``app.execution.claims``), a signal and an earlier one of the same strategy
and symbol by its turn (``app.execution.turns``), two monitor cycles by the monitor lock.
A job's time limit is a timer (:class:`rq.timeouts.TimerDeathPenalty`): SIGALRM reaches
only the main thread.

RQ's own work loop gives up ("quitting") on most Redis errors: one after a job when Redis
has gone. :func:`run_worker` does not: it waits for Redis (capped backoff, one log line
per change, ``app.outages``) and starts a fresh worker. A job that failed because the
database was unreachable makes the worker wait for the database before it takes the next
one, rather than fail every job on the queue in turn. Only SIGTERM/SIGINT end it (warm:
the job under way finishes first), or a missing setting (exit code 78).

:class:`PacekeeperWorker` also stops its pub/sub listener (``rq`` commands such as
``send_shutdown_command``) at once: see :meth:`PacekeeperWorker.unsubscribe`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from types import FrameType, TracebackType
from typing import Any

from redis import Redis, RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from app.config import Settings, get_settings
from app.outages import (
    BACKOFF_CAP,
    CONFIG_ERROR,
    Backoff,
    Component,
    StopFlag,
    database_probe,
    is_database_outage,
    is_redis_outage,
    outage_recorder,
    redis_probe,
    wait_for,
)
from app.queue import PROCESS_SIGNAL

log = logging.getLogger(__name__)

# How long a stopping worker waits for its pub/sub thread when Redis does not answer (the
# thread then sleeps out its reconnect pause); with Redis up it ends in milliseconds.
LISTENER_STOP_WAIT = 5.0
# Seconds the pub/sub thread (RQ's commands to a worker) blocks reading at a time.
PUBSUB_WAKE = 1.0
# A worker that ran this long before its loop ended starts again after the shortest pause.
STEADY_SECONDS = 60.0
# Seconds between heartbeats while every thread is busy and the main thread waits for one.
SLOT_WAIT = 1.0
# How long a stopping worker keeps asking its scheduler process to end (SIGTERM, again every
# SCHEDULER_RESEND s) before it kills it.
SCHEDULER_STOP_WAIT = 10.0
SCHEDULER_RESEND = 0.2
# RQ renews the worker's keys before and after taking each job, three commands each time:
# six round trips a job, on the main thread that hands jobs to the others. A renewal this
# soon after the last is skipped (the keys live worker_ttl + 60 s), and one is pipelined.
HEARTBEAT_EVERY = 1.0
# Seconds a worker start waits for the key-permission guard (app/keyguard.py).
KEY_CHECK_PATIENCE = 10.0
# RQ logs each failed attempt to reach Redis while it waits for a job; Component logs the
# outage once instead.
_RQ_RETRY_LINE = "could not connect to Redis instance"


class _QuietRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _RQ_RETRY_LINE not in str(record.msg)


class PacekeeperWorker(SimpleWorker):
    """SimpleWorker that runs up to ``concurrency`` jobs at once on threads, reports Redis
    outages once, survives a stop asked while Redis is down, and waits for the database
    after a job met a database outage."""

    max_connection_wait_time = BACKOFF_CAP
    death_penalty_class = TimerDeathPenalty

    def __init__(
        self,
        *args: Any,
        concurrency: int = 1,
        stop: StopFlag | None = None,
        redis_state: Component | None = None,
        database_state: Component | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._running = 0
        self._settled = threading.Condition()
        self._handing_over = False  # between taking a job from Redis and starting its thread
        self._threads: ThreadPoolExecutor | None = None
        self.stop = stop if stop is not None else StopFlag()
        self.redis_state = redis_state or Component("redis", log)
        self.database_state = database_state or Component("database", log)
        self._database_down = False
        self._burst = False
        self._last_beat = -HEARTBEAT_EVERY  # monotonic time of the last heartbeat sent
        self.push_exc_handler(self._note_outage)
        if not any(isinstance(f, _QuietRetries) for f in self.log.filters):
            self.log.addFilter(_QuietRetries())

    def subscribe(self) -> None:
        """RQ's, with the pub/sub thread waking every second instead of every minute:
        redis-py waits for that thread when it is stopped, so a stop (SIGTERM, or a new
        worker after an outage) took up to a minute."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_WAKE, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def unsubscribe(self) -> None:
        """Stop the pub/sub thread, then unsubscribe: the reply that wakes it also ends it.

        RQ's own order is the reverse: UNSUBSCRIBE, then ``PubSubWorkerThread.stop()``. The
        thread blocks reading the subscription for up to 60 s (RQ's ``sleep_time``) and
        checks its stop flag only between reads. When it reads the UNSUBSCRIBE reply before
        ``stop()`` has cleared the flag (under load, about one stop in three) it goes back to
        waiting, now for a subscription that will not come, for the full 60 s; and since
        redis-py 8.2 ``stop()`` joins the thread, so the worker's teardown waits that long
        too: an idle ``pacekeeper worker`` took a minute to stop. Clearing the flag before
        the reply is sent leaves the thread no read to go back to.
        """
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        self.log.info(
            "Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name
        )
        thread.stop(timeout=0)  # clear the flag only; the join comes below
        try:
            pubsub.unsubscribe()
        except RedisError as exc:  # Redis is gone: the thread ends on its own connection error
            self.log.warning("Worker %s: could not unsubscribe: %s", self.name, exc)
        thread.join(timeout=LISTENER_STOP_WAIT)
        pubsub.close()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:  # part of RQ's own transaction: its caller executes it
            super().heartbeat(timeout, pipeline)
            return
        beat = time.monotonic()
        if timeout is None and beat - self._last_beat < HEARTBEAT_EVERY:
            return
        try:
            pipe = self.connection.pipeline(transaction=False)
            super().heartbeat(timeout, pipe)
            pipe.execute()
        except Exception as exc:
            if is_redis_outage(exc):
                self.redis_state.failed(exc)
            raise
        self._last_beat = beat
        self.redis_state.answered()

    # ---- running jobs on threads ----------------------------------------------------------

    @property
    def running(self) -> int:
        """Jobs running on this worker's threads now."""
        return self._running

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Start the job on a free thread (one was reserved before it was dequeued). After a
        job met a database outage, the next one waits for the database first: it would only
        fail too (a stop meanwhile puts it back at the front of its queue)."""
        if self._database_down and not self._burst:
            try:
                self._wait_for_database()
            except StopRequested:
                queue.push_job_id(job.id, at_front=True)
                self._handing_over = False
                raise
        execution = self.prepare_execution(job)
        with self._settled:
            self._running += 1
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job")
        self._threads.submit(self._perform, job, queue, execution)
        self._handing_over = False

    def _perform(self, job: Job, queue: Queue, execution: Any) -> None:
        try:
            self.perform_job(job, queue, execution)
        except Exception:  # perform_job records a job's own failure; this is RQ's bookkeeping
            self.log.exception("Worker %s: job %s ended outside RQ's handling", self.name, job.id)
        finally:
            with self._settled:
                self._running -= 1
                self._settled.notify_all()
            self._slots.release()

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Any
    ) -> None:
        """A signal job's success in one transaction, one round trip.

        RQ's own handling is general: it watches the job's dependents, reads them, reads the
        job's status back, and to delete a job kept for no time (``result_ttl=0``: every
        signal job, ``app.queue``) it lists and fetches the job's executions twice, once for
        the started registry and once for the executions registry. About ten round trips to
        Redis per job, in the burst's fifty threads at once: a tenth of a worker's CPU in a
        burst. A signal job has one execution, this one, and nothing else hangs on it: no
        job depends on it, it is never repeated, grouped or rate-limited (it is enqueued one
        way only, by ``app.queue``). So what RQ's handling would leave is known beforehand
        and written at once: the worker's counters, the execution gone from its registries,
        the job's keys deleted. Any other job takes RQ's road.
        """
        if not _is_plain_signal_job(job, self.default_result_ttl) or execution is None:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        with self.connection.pipeline() as pipe:  # MULTI ... EXEC
            self.increment_successful_job_count(pipeline=pipe)
            if job.ended_at is not None and job.started_at is not None:
                self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.delete(
                job.key,
                job.dependents_key,
                job.dependencies_key,
                Result.get_key(job.id),
                job.execution_registry.key,
            )
            pipe.execute()
        job._status = JobStatus.FINISHED
        self.log.info("Successfully completed job %s on worker %s", job.id, self.name)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # RQ says "idle" whenever the main thread waits for a job; busy while any thread runs.
        if state == WorkerStatus.IDLE and self._running:
            state = WorkerStatus.BUSY
        super().set_state(state, pipeline)

    def reorder_queues(self, reference_queue: Queue) -> None:
        # RQ calls this the moment a job has been taken from Redis: from here until its
        # thread starts, a stop must not interrupt the main thread (the job would be lost
        # from every list until the sweeper found it).
        self._handing_over = True
        super().reorder_queues(reference_queue)

    def _reserve_slot(self) -> None:
        """Wait for a free thread, heartbeating meanwhile; a stop ends the wait."""
        while not self._slots.acquire(timeout=SLOT_WAIT):
            if self._stop_requested or self.stop:
                raise StopRequested()
            self.heartbeat()

    def wait_for_jobs(self, timeout: float | None = None) -> bool:
        """Wait until no job runs; False if some still did after ``timeout`` seconds."""
        with self._settled:
            return self._settled.wait_for(lambda: self._running == 0, timeout)

    def teardown(self) -> None:
        # A stop (warm) lets every running job finish: each ends after its current exchange
        # call at the latest, since nothing a job does waits long (an order in doubt is
        # parked, not waited for). A second SIGTERM/SIGINT is a cold stop (request_force_stop).
        if self._running:
            self.log.info("Worker %s: waiting for %d running jobs", self.name, self._running)
        self.wait_for_jobs()
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        super().teardown()

    def stop_scheduler(self) -> None:
        """End the scheduler process, asking again until it has.

        RQ sends one SIGTERM and waits for the process without a limit. The scheduler is a
        fork that installs its own SIGTERM handler a moment after it starts; a stop asked
        before that (a worker stopped as it starts) lands on the handler the fork inherited,
        ours, which only sets a flag in the child's copy of memory: the child scheduled on
        and the worker waited for it until it was killed. So the signal is sent again until
        the child ends, and a child still there after SCHEDULER_STOP_WAIT is killed (it holds
        nothing but its locks, which expire)."""
        process = self.scheduler._process if self.scheduler is not None else None
        if process is None or not process.pid:
            return
        deadline = time.monotonic() + SCHEDULER_STOP_WAIT
        while process.is_alive():
            with suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)
            process.join(SCHEDULER_RESEND)
            if process.is_alive() and time.monotonic() > deadline:
                self.log.warning("Worker %s: scheduler did not stop; killed", self.name)
                with suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)
                process.join()

    def _shutdown(self) -> None:
        """A warm stop. The main thread never runs a job, so the stop interrupts what it
        waits for (the next job, a free thread), except while it hands a job it took from
        Redis over to a thread: then the loop stops right after that."""
        self._stop_requested = True
        with suppress(Exception):  # Redis may be down: the stop stands anyway
            self.set_shutdown_requested_date()
        if self.scheduler:
            with suppress(Exception):
                self.stop_scheduler()
        if not self._handing_over:
            raise StopRequested()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A second SIGTERM/SIGINT: leave at once. The jobs running are abandoned mid-way and
        recovered like those of a killed worker (the sweeper, client-id reconciliation)."""
        self.log.warning("Worker %s: cold shut down with %d jobs running", self.name, self._running)
        logging.shutdown()
        os._exit(1)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        try:
            super().request_stop(signum, frame)
        except Exception as exc:
            if not is_redis_outage(exc):
                raise
            # Redis is down, so RQ cannot tell whether a job runs; none does between jobs.
            raise StopRequested() from None

    def _note_outage(
        self, job: Job, exc_type: type[BaseException], exc: BaseException, tb: TracebackType
    ) -> bool:
        if is_database_outage(exc):
            self._database_down = True
            self.database_state.failed(exc)  # logged once, by the first job that met it
        return True

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        self._burst = burst
        return super().work(burst, *args, **kwargs)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """The next job, taken from Redis only once a thread is free to run it."""
        if self.stop:  # SIGTERM came before RQ's own handlers were installed
            raise StopRequested()
        # A burst worker drains what it can and ends; the jobs it fails are recovered.
        if self._database_down and not self._burst:
            self._wait_for_database()
        self._reserve_slot()
        result = None
        try:
            while True:
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                if result is not None or not (self._burst and self._running):
                    break
                # A burst ends when the queues are empty and nothing runs that may add to them.
                self.wait_for_jobs()
        finally:
            if result is None:
                self._handing_over = False
                self._slots.release()
        return result

    def _wait_for_database(self) -> None:
        from worker.resources import resources

        self._database_down = False
        probe = database_probe(resources().engine)
        # Still alive to RQ meanwhile: heartbeats keep it registered while it waits.
        if not wait_for(self.database_state, probe, stop=self.stop, between=self.heartbeat):
            raise StopRequested()


def _is_plain_signal_job(job: Job, default_result_ttl: int) -> bool:
    """A signal job as ``app.queue`` enqueues it: kept for no time, one run, on its own."""
    return (
        job.func_name == PROCESS_SIGNAL
        and job.get_result_ttl(default_result_ttl) == 0
        and not job.repeats_left
        and not job.group_id
        and not job.has_rate_limit
    )


def build_worker(
    settings: Settings,
    connection: Redis,
    *,
    name: str | None = None,
    stop: StopFlag | None = None,
    states: tuple[Component, Component] | None = None,
) -> PacekeeperWorker:
    """A worker for the queue; ``states`` (redis, database) are shared by the workers one
    process runs in turn, so an outage is logged once whichever of them sees it."""
    from app.heap import freeze_startup_heap
    from worker.jobs import preload

    # Before the first job, not during it: see worker.jobs.JOB_MODULES.
    preload(settings)
    freeze_startup_heap()  # what preload built lives as long as the worker: app.heap
    redis_state, database_state = states or (None, None)
    # In priority order: the monitor's jobs, then signals, then notifications.
    names = (settings.monitor_queue_name, settings.queue_name, settings.notify_queue_name)
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in names]
    return PacekeeperWorker(
        queues,
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        concurrency=settings.worker_concurrency,
        maintenance_interval=settings.worker_maintenance_interval,
        worker_ttl=settings.worker_ttl,
        stop=stop,
        redis_state=redis_state,
        database_state=database_state,
    )


PR_SET_PDEATHSIG = 1  # linux/prctl.h
_forking: list[int] = []  # the pid that forked, read by the child (its own copy of memory)


def _note_forking() -> None:
    _forking[:] = [os.getpid()]


def _die_with_parent() -> None:
    """In a child the worker forks (RQ's scheduler): end when the worker ends. A worker
    SIGKILLed (an OOM kill, a supervisor's kill) would otherwise leave its scheduler running
    under init, holding and renewing the scheduler lock with the old code, for ever."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if _forking and os.getppid() != _forking[0]:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def die_with_the_worker() -> None:
    """Make every process this one forks from now on end when it ends (once per process)."""
    if not _forking:
        _note_forking()
        os.register_at_fork(before=_note_forking, after_in_child=_die_with_parent)


def run_worker(*, burst: bool = False, settings: Settings | None = None) -> int:
    """Work until SIGTERM/SIGINT, starting a fresh RQ worker after each Redis outage."""
    settings = settings or get_settings()
    die_with_the_worker()
    from app.logging import configure_logging

    configure_logging(settings)
    if not settings.redis_url:
        log.error("PACEKEEPER_REDIS_URL is not set: a worker needs Redis")
        return CONFIG_ERROR
    _check_keys()
    stop = StopFlag().install()
    recorder = outage_recorder(settings, "worker")
    redis_state = Component("redis", log, on_answered=recorder)
    states = (redis_state, Component("database", log, on_answered=recorder))
    backoff = Backoff()
    probe = redis_probe(settings.redis_url)
    while not stop:
        if not wait_for(redis_state, probe, stop=stop):
            break
        connection = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
        worker: PacekeeperWorker | None = None
        started = time.monotonic()
        try:
            worker = build_worker(settings, connection, stop=stop, states=states)
            # The scheduler enqueues retries a job asked for with RQ's Retry(interval=...)
            # (an exchange rate limit or outage); only one worker per queue runs it at once.
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
        except StopRequested:
            stop.set()
        except Exception as exc:
            if is_redis_outage(exc):
                redis_state.failed(exc)
            else:
                log.exception("worker stopped on an unexpected error; starting a new one")
        finally:
            stop.install()  # RQ's handlers need Redis; ours only set the flag
            _forget(worker, connection)
        if burst or stop:
            break
        # RQ's loop quits on a Redis error (or an unexpected one): wait for Redis (at the
        # top), then a new worker; one that quits at once again is restarted more slowly.
        if time.monotonic() - started > STEADY_SECONDS:
            backoff.reset()
        if stop.pause(backoff.next()):
            break
    return 0


def _check_keys(patience: float = KEY_CHECK_PATIENCE) -> None:
    """The key-permission guard before the first job (it runs daily after that); an
    exchange that does not answer delays the start by ``patience`` seconds at most."""
    from worker.jobs import check_keys

    def check() -> None:
        try:
            check_keys()
        except Exception as exc:  # the database or the exchange is down: the daily run redoes it
            log.warning("key guard: not run at start: %s", exc)

    thread = threading.Thread(target=check, name="pacekeeper-key-guard", daemon=True)
    thread.start()
    thread.join(patience)


def _forget(worker: PacekeeperWorker | None, connection: Redis) -> None:
    """Stop what a worker left running after its loop ended (its pub/sub thread)."""
    if worker is not None:
        with suppress(Exception):  # Redis is down: the thread dies with its connection
            worker.unsubscribe()
    connection.close()
