"""The receiver's FastAPI app: ``create_app()`` is the factory ``pacekeeper api`` serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import api, errors
from app.accounts import configured_accounts
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.heap import freeze_startup_heap
from app.logging import settings_secrets
from app.models import utcnow
from app.queue import Enqueuer, connect, connect_async, make_queue
from app.signals.router import router as signals_router
from app.signals.router import webhook_route
from app.signals.security import Authenticator
from app.signals.symbols import SymbolDirectory
from app.signals.throttle import BodyDeadline, SenderThrottle
from app.signals.writer import IntakeWriter


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database, Redis, the intake writer and the enqueuer; close them after."""
    settings: Settings = app.state.settings
    # A small pool: the intake writer keeps one connection (app.signals.writer); the rest read.
    engine = make_engine(settings.database_url, pool_size=5, max_overflow=10)
    app.state.engine = engine
    app.state.session_factory = make_sessionmaker(engine)
    # Health checks and metrics read through their own engine: on SQLite they must not
    # queue for the write lock behind the intake and the workers (busy is not unready).
    app.state.read_engine = make_engine(
        settings.database_url, read_only=True, pool_size=2, max_overflow=4
    )
    app.state.read_sessions = make_sessionmaker(app.state.read_engine)
    writer = IntakeWriter(engine)
    app.state.writer = writer
    redis = connect(settings.redis_url) if settings.redis_url else None
    app.state.redis = redis
    enqueuer = None
    if redis is not None:
        app.state.queue = make_queue(redis, settings.queue_name)
        # Without Redis configured, signals wait in the database for the sweeper.
        enqueuer = Enqueuer(
            app.state.queue,
            connect_async(settings.redis_url or ""),
            writer.mark_queued,
            clock=app.state.clock,
        )
        writer.on_commit = enqueuer.submit
    writer.start()
    symbols = None
    if settings.webhook_check_symbols:
        symbols = SymbolDirectory.from_settings(settings, redis).start()
    app.state.symbols = symbols
    freeze_startup_heap()  # what the process keeps for its life: app.heap
    try:
        yield
    finally:
        if symbols is not None:
            await symbols.close()
        if enqueuer is not None:
            await enqueuer.close()
        await writer.stop()
        if redis is not None:
            redis.close()
        app.state.read_engine.dispose()
        engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The receiver; refuses to build with an empty or placeholder webhook secret."""
    settings = settings or get_settings()
    settings.check_webhook_secret()
    if settings.env != "test":
        from app.logging import configure_logging

        configure_logging(settings)
    production = settings.env == "prod"
    app = FastAPI(
        title="Pacekeeper",
        summary="Trading signals in, Binance algo orders out",
        lifespan=lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None,
        openapi_url=None if production else "/openapi.json",
    )
    app.state.settings = settings
    app.state.clock = utcnow
    app.state.authenticator = Authenticator.from_settings(settings)
    # Every configured secret (not only the webhook's) is redacted from stored signals and echoes.
    app.state.secret_values = settings_secrets(settings)
    # The accounts a signal may name, and the markets each trades (a bad setting stops here).
    app.state.account_markets = {
        name: account.markets for name, account in configured_accounts(settings).items()
    }
    app.state.throttle = (
        SenderThrottle(settings.webhook_rate_limit, settings.webhook_rate_burst)
        if settings.webhook_rate_limit > 0
        else None
    )
    app.add_middleware(BodyDeadline, timeout=settings.body_timeout)
    errors.install(app)
    app.include_router(signals_router)
    app.router.routes.insert(0, webhook_route)  # first match: see app.signals.router
    api.install(app)  # /health, /metrics, /api, the dashboard
    return app
