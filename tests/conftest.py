"""Shared fixtures: real databases (SQLite file and PostgreSQL), real Redis, isolated names.

Each test session creates its own PostgreSQL database and drops it at the end; Redis tests
use their own database number (``PACEKEEPER_TEST_REDIS_DB``, default 9) and unique queue
names, and delete only the keys they made.

Away from CI a missing Redis or PostgreSQL skips the tests that need it. With ``CI=true``
(``.ci/run`` sets it) nothing may skip: CI starts every service the suite needs, so a skip
there would hide a missing service or a module that no longer imports; it fails instead.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Generator, Iterator
from typing import NoReturn

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.config import Settings
from app.db import Base, make_engine, make_sessionmaker

PG_ADMIN_URL = os.environ.get(
    "PACEKEEPER_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_DB = int(os.environ.get("PACEKEEPER_TEST_REDIS_DB", "9"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
TEST_WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"
TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_missing(reason: str) -> NoReturn:
    """Skip a test whose service is not running; in CI, fail it."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: CI starts it with scripts/services.sh)", pytrace=False)
    pytest.skip(reason)


def _failed_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped, and CI=true allows no skip: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _failed_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _failed_in_ci(report)  # a module-level skip (importorskip) skips the whole module
    return report


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    if not _pg_available():
        service_missing("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"pk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this test session, migrated to head."""
    path = tmp_path_factory.mktemp("db") / "pacekeeper.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL, with empty tables."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    _truncate(url)
    return url


@pytest.fixture
def sqlite_only_url(sqlite_url: str) -> str:
    _truncate(sqlite_url)
    return sqlite_url


def _truncate(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="module")
def private_redis_url() -> Iterator[str]:
    """A redis-server of the test module's own, on a free port: tests may flush it."""
    from app.devstack import PrivateRedis, Supervisor

    supervisor = Supervisor(out=io.StringIO(), stop_timeout=5)
    private = PrivateRedis()
    try:
        yield private.start(supervisor)
    finally:
        supervisor.stop()
        private.cleanup()


@pytest.fixture
def redis_url() -> str:
    conn = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.RedisError:
        service_missing("Redis is not reachable on 127.0.0.1:6379")
    finally:
        conn.close()
    return REDIS_URL


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def queue_name(redis_conn: redis.Redis) -> Iterator[str]:
    """A queue name no other test uses; its RQ keys are deleted afterwards."""
    name = f"pk-test-{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(redis_conn.scan_iter(match=f"rq:*{name}*", count=500))
    keys += list(redis_conn.scan_iter(match=f"pacekeeper:*{name}*", count=500))
    keys += list(redis_conn.scan_iter(match=f"pk:rl:{name}:*", count=500))
    # Job hashes do not carry the queue's name: find them through the queue and registries.
    job_ids: set[bytes] = set()
    for key in keys:
        kind = redis_conn.type(key)
        if kind == b"list":
            job_ids.update(m for m in redis_conn.lrange(key, 0, -1) if isinstance(m, bytes))
        elif kind == b"zset":
            members = redis_conn.zrange(key, 0, -1)
            job_ids.update(m.split(b":")[0] for m in members if isinstance(m, bytes))
    keys += [prefix + job_id for job_id in job_ids for prefix in (b"rq:job:", b"rq:results:")]
    if keys:
        redis_conn.delete(*keys)
    redis_conn.srem("rq:queues", f"rq:queue:{name}")


@pytest.fixture
def settings(db_url: str, redis_url: str, queue_name: str) -> Settings:
    """Settings pointing at the test database, test Redis and a private queue."""
    return Settings(
        _env_file=None,
        env="test",
        database_url=db_url,
        redis_url=redis_url,
        queue_name=queue_name,
        # The rate-limit governor's weight, bans and holds are the test's own: tests run
        # side by side (pytest-xdist) and must not spend each other's budget.
        rate_limit_prefix=f"pk:rl:{queue_name}:",
        webhook_secret=TEST_WEBHOOK_SECRET,
        admin_token=TEST_ADMIN_TOKEN,
        twap_min_duration=10,
        # Its exchange is the default paper URL, which another process on this machine may
        # answer: the symbol check is tested where the exchange is the test's own.
        webhook_check_symbols=False,
    )
