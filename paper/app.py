"""The paper exchange's FastAPI app: Binance's paths behind a gateway that charges request
weight and applies fault rules, plus the ``/paper`` control routes.

``create_app()`` (what ``pacekeeper paper`` runs) reads its ``PaperSettings`` from the
environment and runs on the system clock (or a manual one with
``PACEKEEPER_PAPER_MANUAL_CLOCK=true``); tests pass their own settings and a ``ManualClock``
they step forward.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from paper import routes_algo, routes_control, routes_futures, routes_spot, routes_wallet
from paper.auth import Verifier
from paper.clock import Clock, ManualClock, SystemClock
from paper.deps import PaperState
from paper.engine import Engine
from paper.errors import BinanceError
from paper.faults import ErrorReply, Faults
from paper.ratelimit import WeightCounter, family
from paper.settings import PaperSettings


def create_app(settings: PaperSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or PaperSettings()
    if clock is None:
        clock = ManualClock() if settings.paper_manual_clock else SystemClock()
    engine = Engine(settings, clock)
    paper = PaperState(
        settings=settings,
        clock=clock,
        engine=engine,
        faults=Faults(settings.paper_seed),
        weights=WeightCounter(),
        verifier=Verifier(settings, engine.secrets),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_tick(paper)) if clock.realtime else None
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    app = FastAPI(
        title="Pacekeeper paper exchange",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.paper = paper
    app.add_exception_handler(BinanceError, _binance_error)  # type: ignore[arg-type]
    app.middleware("http")(_gateway)
    for module in (routes_spot, routes_algo, routes_futures, routes_wallet, routes_control):
        app.include_router(module.router)
    return app


async def _tick(paper: PaperState) -> None:
    """Advance the market on the real clock even when nobody is asking."""
    while True:
        await asyncio.sleep(paper.settings.paper_tick_seconds)
        await anyio.to_thread.run_sync(paper.engine.sync)


async def _binance_error(_: Request, exc: BinanceError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _reply(reply: ErrorReply, headers: dict[str, str] | None = None) -> Response:
    all_headers = {**reply.headers, **(headers or {})}
    if isinstance(reply.body, str):
        return PlainTextResponse(reply.body, status_code=reply.status, headers=all_headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=all_headers)


async def _gateway(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Faults and request weight around every Binance path (``/paper`` is left alone)."""
    path = request.url.path
    if not family(path):
        return await call_next(request)
    paper: PaperState = request.app.state.paper
    params: dict[str, str] = dict(request.query_params)
    if paper.faults.by_symbol and request.method != "GET":
        params.update(parse_qsl((await request.body()).decode("latin-1")))
    key = request.headers.get("X-MBX-APIKEY")
    plan = paper.faults.plan(request.method, path, params, key)
    if plan.delay_s:
        # The request has arrived: read it whole first, so that a client that gives up
        # while the server holds it does not unmake it. Binance executes an order whose
        # caller timed out; a held request that vanished with its caller would hide the
        # case a client must handle (sent, timed out, executed all the same).
        await request.body()
        paper.faults.hold(plan, 1)
        try:
            await asyncio.sleep(plan.delay_s)
        finally:
            paper.faults.hold(plan, -1)
    charge = paper.weights.charge(request.method, path, request.query_params)
    if plan.before is not None:
        return _reply(plan.before, charge.headers)
    if charge.limit is not None and paper.settings.paper_rate_limits:
        paper.faults.start_backoff(charge.scope, charge.retry_after)
        reply = ErrorReply(
            429,
            {
                "code": -1003,
                "msg": f"Too much request weight used; current limit is {charge.limit} request "
                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                "polling the API.",
            },
            {"Retry-After": str(charge.retry_after)},
        )
        return _reply(reply, charge.headers)
    # Order counts are the account's (UID), request weight the IP's.
    order_headers, order_limit, window_left = paper.weights.count_orders(
        request.method, path, key or ""
    )
    if order_limit is not None and paper.settings.paper_rate_limits:
        reply = ErrorReply(
            429,
            {"code": -1015, "msg": f"Too many new orders; current limit is {order_limit}."},
            {"Retry-After": str(window_left)},
        )
        return _reply(reply, {**charge.headers, **order_headers})
    request.state.lag_s = plan.lag_s
    response = await call_next(request)
    if plan.after is not None:
        return _reply(plan.after, {**charge.headers, **order_headers})
    response.headers.update({**charge.headers, **order_headers})
    return response
