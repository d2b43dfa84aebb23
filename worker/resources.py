"""Per-process resources for jobs: created once per worker process, reused by every job.

A job that opened its own database engine, Redis connection and exchange client would pay
for new connections, a new TLS session and a fresh exchangeInfo download on every signal;
with one ``SimpleWorker`` process these live as long as the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.accounts import DEFAULT_ACCOUNT, AccountConfig, configured_accounts
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.exchange.client import BinanceClient
from app.execution.context import ExecContext
from app.metrics import exchange_observer
from app.queue import connect


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis | None
    client: BinanceClient
    # Every named account's client (the account `default`'s is ``client``) and settings.
    clients: dict[str, BinanceClient] = field(default_factory=dict)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)

    def exec_context(self, *, doubt_patience: float | None = None) -> ExecContext:
        return ExecContext(
            self.settings,
            self.client,
            self.sessions,
            self.redis,
            doubt_patience=doubt_patience,
            clients={DEFAULT_ACCOUNT: self.client, **self.clients},
            accounts=self.accounts,
        )

    def close(self) -> None:
        for client in {id(c): c for c in [self.client, *self.clients.values()]}.values():
            client.close()
        if self.redis is not None:
            self.redis.close()
        self.engine.dispose()


_lock = threading.Lock()
_resources: Resources | None = None


def build(settings: Settings) -> Resources:
    # A connection per running job would be most of the database's connection limit; jobs
    # hold one only between exchange calls, so a few serve many threads.
    pool = min(settings.worker_concurrency, 8)
    engine = make_engine(settings.database_url, pool_size=pool, max_overflow=pool)
    redis = connect(settings.redis_url) if settings.redis_url else None
    accounts = configured_accounts(settings)
    clients = {
        name: BinanceClient.from_settings(
            settings,
            redis=redis,
            credentials=account.credentials,
            account="" if name == DEFAULT_ACCOUNT else name,
            observer=exchange_observer(redis, settings, name),
        )
        for name, account in accounts.items()
    }
    return Resources(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=redis,
        client=clients[DEFAULT_ACCOUNT],
        clients=clients,
        accounts=accounts,
    )


def resources() -> Resources:
    """This process's resources, built on first use from the environment's settings."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = build(get_settings())
        return _resources


def install(value: Resources | None) -> Resources | None:
    """Replace this process's resources (tests, benchmarks); returns the previous ones."""
    global _resources
    with _lock:
        previous, _resources = _resources, value
        return previous
