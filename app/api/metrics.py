"""``GET /metrics`` in Prometheus's text format, and the webhook's answer timer.

What each metric is and where it comes from: ``app.metrics``. The endpoint carries no
secrets, only counts; keep it on the private network (Prometheus scrapes it there) rather
than behind the public reverse proxy that TradingView reaches.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import WebhookMetrics

router = APIRouter(tags=["operations"])

WEBHOOK_PATH = "/webhook"


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    # A plain `def`: the collectors query the database and Redis, so this runs in a thread.
    body = generate_latest(request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class WebhookTimer:
    """Counts each ``POST /webhook`` answer by status and times it to the answer's start.

    Pure ASGI, and only two clock reads and one observation per webhook, so the hot path stays
    as fast as without it. Other paths pass straight through.
    """

    def __init__(self, app: ASGIApp, metrics: WebhookMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        async def timed_send(message: Message) -> None:
            nonlocal observed
            if message["type"] == "http.response.start" and not observed:
                observed = True
                self.metrics.observe(message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            if not observed:
                self.metrics.observe(500, time.perf_counter() - started)
            raise
