"""``POST /webhook``: the front door for signals.

Order of checks, cheapest and least revealing first: source address (401), the sender's
rate (429 with Retry-After, ``app.signals.throttle``), content type (415), size while the
bytes arrive (413) within the body deadline (408), header signature if one is sent (401), JSON
(422, without echoing the body), body secret (401), then the signal itself (422, every
problem), then its symbol against the exchange's listing (422, ``app.signals.symbols``).
Only an authenticated sender learns what is wrong with its signal. Bad input
and repeats are never answered with a 5xx: TradingView resends on 5xx.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from app.errors import (
    FieldError,
    InvalidInput,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    responses,
)
from app.signals import service
from app.signals.schemas import InvalidSignal, Signal
from app.signals.security import SIGNATURE_HEADER, TIMESTAMP_HEADER, Authenticator, Verdict
from app.signals.symbols import SymbolDirectory
from app.signals.throttle import SenderThrottle

log = logging.getLogger("pacekeeper.signals")

router = APIRouter(tags=["signals"])


class IntakeOut(BaseModel):
    signal_id: str
    status: str
    duplicate: bool = Field(description="true: a repeat of a signal already accepted")


MEDIA_TYPES = ("application/json", "text/plain")

_EXAMPLE = {
    "secret": "…",
    "id": "tv-42-BTCUSDT-entry",
    "action": "entry",
    "symbol": "BINANCE:BTCUSDT",
    "side": "buy",
    "quantity": "0.5",
    "execution": {"type": "twap", "duration": 1800, "limit_price": "64000"},
    "take_profit": {"price": "70000"},
    "stop_loss": {"stop_price": "60000", "limit_price": "59900"},
    "ttl": 3600,
}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"field {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object with every number as int or Decimal (never float)."""
    try:
        data = json.loads(
            body,
            parse_float=Decimal,
            parse_constant=_no_constants,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as exc:
        # exc.doc is the body, secret included: only the position is reported.
        message = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise InvalidInput([FieldError("body", None, message)]) from None
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if "appears twice" in str(exc) or "not a number" in str(exc) else ""
        message = f"not valid JSON{': ' + detail if detail else ''}"
        raise InvalidInput([FieldError("body", None, message)]) from None
    if not isinstance(data, dict):
        raise InvalidInput([FieldError("body", None, "must be a JSON object")])
    return data


def _check_listed(symbols: SymbolDirectory | None, signal: Signal, given: Any) -> None:
    """422 for a symbol the exchange's recent listing does not have (never when unknown)."""
    if symbols is None or signal.symbol is None or signal.market is None:
        return
    if symbols.listed(signal.market.value, signal.symbol) is False:
        where = "USD-M futures" if signal.market.value == "usdm" else "spot"
        message = f"{signal.symbol} is not listed on the exchange ({where})"
        raise InvalidInput([FieldError("symbol", given, message)])


def _require(verdict: Verdict, source: str | None) -> None:
    if not verdict.ok:
        log.warning("webhook refused: %s", verdict.reason, extra={"source_ip": source})
        raise Unauthorized(verdict.reason)


@router.post(
    "/webhook",
    status_code=202,
    summary="Post a signal",
    responses={
        200: {"model": IntakeOut, "description": "A repeat of a signal already accepted"},
        202: {"model": IntakeOut, "description": "Accepted: stored, and queued for execution"},
        **responses(
            401,
            408,
            409,
            413,
            415,
            422,
            429,
            503,
            descriptions={
                401: "Bad secret or signature, or a source outside the allow-list",
                409: "This signal id was already used for a different signal (`signal_id`)",
                503: "The database is down: nothing was accepted, send again",
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": _EXAMPLE},
                # TradingView sends JSON as text/plain when a placeholder breaks strict JSON.
                "text/plain": {
                    "schema": {"type": "string", "pattern": r"^\s*\{[\s\S]*\}\s*$"},
                    "example": json.dumps(_EXAMPLE),
                },
            },
        }
    },
)
async def receive_signal(request: Request) -> JSONResponse:
    state = request.app.state
    settings = state.settings
    auth: Authenticator = state.authenticator

    peer = request.client.host if request.client else None
    source = auth.source(peer, request.headers.get("x-forwarded-for"))
    _require(auth.source_allowed(source), source)
    throttle: SenderThrottle | None = getattr(state, "throttle", None)
    if throttle is not None:
        wait = throttle.take(source or "")
        if wait > 0:
            raise TooManyRequests(wait)

    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise UnsupportedMediaType()
    try:
        body = await read_body(request, settings.webhook_max_body_bytes)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)

    now = state.clock()
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    signed = timestamp is not None or signature is not None
    if signed:
        _require(auth.signature(timestamp, signature, body, now.timestamp()), source)
    raw = parse_json(body)
    if not signed:
        _require(auth.body_secret(raw.get(service.SECRET_FIELD)), source)

    try:
        prepared = service.prepare(
            raw,
            now=now,
            dedupe_window=settings.dedupe_window,
            twap_min_duration=settings.twap_min_duration,
            twap_max_duration=settings.twap_max_duration,
            secrets=state.secret_values,
            accounts=getattr(state, "account_markets", None),
        )
    except InvalidSignal as exc:
        log.info(
            "webhook invalid: %s",
            ", ".join(e.field for e in exc.errors),
            extra={"source_ip": source},
        )
        raise InvalidInput(exc.errors) from None
    _check_listed(getattr(state, "symbols", None), prepared.signal, raw.get("symbol"))

    result = await state.writer.record(prepared, now=now, source_ip=source)
    if result.duplicate:
        log.info("signal %s repeated", result.signal_id, extra={"idempotency_key": prepared.key})
        return JSONResponse(result.body(), status_code=200)
    log.info(
        "signal %s accepted: %s %s",
        result.signal_id,
        prepared.signal.action.value,
        prepared.signal.symbol or prepared.signal.target_id,
        extra={"idempotency_key": prepared.key},
    )
    return JSONResponse(result.body(), status_code=202)


# The same handler as a plain Starlette route, which app.main puts ahead of every other:
# FastAPI's per-request machinery around an APIRoute (its routing layers, solving the
# dependencies this handler does not have) cost a fifth of the receiver's CPU per signal.
# The app's exception handlers and middleware apply to it all the same; the APIRoute above
# is still what the OpenAPI document describes (and answers nothing this one does not).
webhook_route = Route("/webhook", receive_signal, methods=["POST"])
