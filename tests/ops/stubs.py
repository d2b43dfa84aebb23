"""Stand-ins for the receiver and the paper exchange, for the ops tests.

``verifying_app`` checks the header signature the way the real receiver must. Run as
``python -m tests.ops.stubs api|paper`` it serves on ``PACEKEEPER_API_PORT`` /
``PACEKEEPER_PAPER_PORT``, which is how the dev-stack tests use it as a child process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.sender import SIGNATURE_HEADER, TIMESTAMP_HEADER


def signature_ok(secret: str, body: bytes, timestamp: str, given: str) -> bool:
    expected = (
        "sha256="
        + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
    return fresh and hmac.compare_digest(given, expected)


def verifying_app(secret: str, received: list[dict[str, Any]]) -> FastAPI:
    """A receiver stand-in: /health, and /webhook that verifies the signature headers."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhook")
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        signal = json.loads(body)
        if SIGNATURE_HEADER in request.headers:
            ok = signature_ok(
                secret,
                body,
                request.headers.get(TIMESTAMP_HEADER, ""),
                request.headers[SIGNATURE_HEADER],
            )
        else:  # TradingView style: the secret in the body
            ok = hmac.compare_digest(str(signal.pop("secret", "")).encode(), secret.encode())
        if not ok:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        received.append({"body": signal, "content_type": request.headers["content-type"]})
        print(f"received signal {signal.get('id')}", flush=True)
        return JSONResponse(
            {"signal_id": "s-1", "status": "queued", "duplicate": False}, status_code=202
        )

    return app


def paper_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v3/time")
    async def server_time() -> dict[str, int]:
        return {"serverTime": int(time.time() * 1000)}

    return app


def main(role: str) -> None:
    import uvicorn

    print(f"{role} stub: redis={os.environ.get('PACEKEEPER_REDIS_URL')}", flush=True)
    if role == "api":
        app = verifying_app(os.environ["PACEKEEPER_WEBHOOK_SECRET"], [])
        port = int(os.environ["PACEKEEPER_API_PORT"])
    else:
        app = paper_app()
        port = int(os.environ["PACEKEEPER_PAPER_PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1])
