"""`pacekeeper worker` and `pacekeeper monitor` ride out a Redis crash and a database outage:
they wait, log each change once, and go on by themselves; only SIGTERM stops them."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.devstack import PrivateRedis, Supervisor
from tests.conftest import PG_ADMIN_URL, _pg_available
from tests.processes import Process, process_env
from tests.proxy import TcpProxy
from tests.support import wait_until

pytestmark = pytest.mark.slow

JOBS = "tests.worker.jobfuncs"


class CrashableRedis:
    """A private redis-server with AOF that a test may SIGKILL and start again."""

    def __init__(self) -> None:
        self.supervisor = Supervisor(out=io.StringIO(), stop_timeout=5)
        self.server = PrivateRedis(appendonly=True)
        self.url = self.server.start(self.supervisor)

    def connect(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def crash(self) -> None:
        self.server.kill()

    def restart(self) -> None:
        self.server.restart(self.supervisor)

    def close(self) -> None:
        self.supervisor.stop()
        self.server.cleanup()


@pytest.fixture
def crashable() -> Iterator[CrashableRedis]:
    server = CrashableRedis()
    yield server
    server.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.kill()


def queue_of(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=JSONSerializer)


def start_worker(
    processes: list[Process], redis_url: str, queue: str, tmp_path: Path, **settings: str
) -> Process:
    settings.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'worker.db'}")
    env = process_env(REDIS_URL=redis_url, QUEUE_NAME=queue, **settings)
    proc = Process(["worker"], env)
    processes.append(proc)
    return proc


def test_a_worker_busy_when_redis_crashes_waits_for_it_and_works_on(
    crashable: CrashableRedis, processes: list[Process], tmp_path: Path
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    conn = crashable.connect()
    worker = start_worker(processes, crashable.url, name, tmp_path)
    release = tmp_path / "release"
    queue_of(conn, name).enqueue_call(
        f"{JOBS}.hold",
        kwargs={"redis_url": crashable.url, "key": "held", "release": str(release)},
    )
    wait_until(lambda: conn.get("held") == b"started", timeout=30)

    # Redis dies under the running job; the job ends and RQ cannot record it.
    crashable.crash()
    release.touch()
    worker.wait_for("redis unreachable")
    assert worker.alive

    crashable.restart()
    conn = crashable.connect()
    queue_of(conn, name).enqueue_call(
        f"{JOBS}.record", kwargs={"redis_url": crashable.url, "key": "after"}
    )
    wait_until(lambda: conn.get("after") == b"1", timeout=30)
    worker.wait_for("redis reachable again")
    assert worker.count("redis unreachable") == 1  # once per outage, not per attempt
    assert worker.terminate() == 0, worker.output


def test_a_worker_started_before_redis_waits_for_it(
    crashable: CrashableRedis, processes: list[Process], tmp_path: Path
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    crashable.crash()
    worker = start_worker(processes, crashable.url, name, tmp_path)
    worker.wait_for("redis unreachable")

    crashable.restart()
    conn = crashable.connect()
    queue_of(conn, name).enqueue_call(
        f"{JOBS}.record", kwargs={"redis_url": crashable.url, "key": "late"}
    )
    wait_until(lambda: conn.get("late") == b"1", timeout=30)
    assert worker.terminate() == 0, worker.output


def test_the_monitor_process_rides_out_a_redis_crash(
    crashable: CrashableRedis, processes: list[Process], tmp_path: Path
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    env = process_env(
        REDIS_URL=crashable.url,
        QUEUE_NAME=name,
        DATABASE_URL=f"sqlite:///{tmp_path / 'monitor.db'}",
    )
    monitor = Process(["monitor"], env)
    processes.append(monitor)
    conn = crashable.connect()

    def schedulers() -> set[bytes]:
        return set(conn.zrange("rq:cron_schedulers", 0, -1))  # type: ignore[arg-type]

    first = wait_until(schedulers, timeout=30)
    crashable.crash()
    monitor.wait_for("redis unreachable")
    assert monitor.alive

    crashable.restart()
    conn = crashable.connect()
    # A fresh scheduler registers and enqueues the periodic jobs (the sweeper among them).
    wait_until(lambda: schedulers() - first, timeout=30)
    monitor.wait_for("redis reachable again")
    wait_until(lambda: queue_of(conn, f"{name}-monitor").count > 0, timeout=30)
    assert monitor.terminate() == 0, monitor.output
    outages = conn.hgetall(f"pacekeeper:metrics:{name}:outages")
    assert outages[b"monitor|redis|count"] == b"1"


@pytest.mark.skipif(not _pg_available(), reason="PostgreSQL is not reachable")
def test_a_worker_waits_for_the_database_instead_of_failing_every_job(
    crashable: CrashableRedis, processes: list[Process], tmp_path: Path
) -> None:
    host, _, port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0].partition(":")
    proxy = TcpProxy(host, int(port or 5432)).start()
    try:
        name = f"outage-{uuid.uuid4().hex[:8]}"
        worker = start_worker(
            processes,
            crashable.url,
            name,
            tmp_path,
            DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/postgres",
        )
        conn = crashable.connect()
        queue = queue_of(conn, name)

        def touch() -> Job:
            return queue.enqueue_call(
                f"{JOBS}.touch_database", kwargs={"redis_url": crashable.url, "key": "runs"}
            )

        touch()
        wait_until(lambda: conn.get("runs") == b"1", timeout=30)

        proxy.cut()
        failing = touch()
        worker.wait_for("database unreachable")
        # The first job met the outage; the worker then waits instead of failing the next.
        wait_until(lambda: failing.get_status(refresh=True) == JobStatus.FAILED, timeout=30)
        waiting = touch()
        wait_until(lambda: queue.count == 0, timeout=30)  # taken, and held until it can run
        assert waiting.get_status(refresh=True) == JobStatus.QUEUED
        assert conn.get("runs") == b"1"

        proxy.restore()
        wait_until(lambda: conn.get("runs") == b"2", timeout=30)
        wait_until(lambda: waiting.get_status(refresh=True) == JobStatus.FINISHED, timeout=30)
        worker.wait_for("database reachable again")
        assert worker.terminate() == 0, worker.output
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        (["worker"], {"REDIS_URL": ""}),
        (["monitor"], {"REDIS_URL": ""}),
        (["api"], {"WEBHOOK_SECRET": "changeme"}),
        (["worker"], {"MONITOR_INTERVAL": "soon"}),
    ],
)
def test_a_configuration_error_exits_78_so_that_no_supervisor_restarts_it(
    command: list[str], settings: dict[str, str], tmp_path: Path
) -> None:
    env = process_env(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", **settings)
    proc = Process(command, env, cwd=tmp_path)
    assert proc.proc.wait(60) == 78, proc.output
    proc.kill()


def test_a_killed_worker_takes_its_scheduler_with_it(
    processes: list[Process], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    """RQ forks its scheduler from the worker. SIGKILLed, the worker left it running under
    init, holding the scheduler lock with the old code, after every kill of the stack."""
    worker = start_worker(processes, redis_url, queue_name, tmp_path)

    def scheduler() -> int | None:
        children = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        return int(pids[0]) if pids else None

    wait_until(lambda: scheduler() is not None, timeout=30)
    child = scheduler()
    assert child is not None
    worker.proc.kill()
    worker.proc.wait(timeout=10)

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"  # ended, waiting for init to reap it

    wait_until(gone, timeout=15)
