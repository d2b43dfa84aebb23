"""The errors the HTTP layer answers with, and their single handler.

::

    AppError                 500  something we did not expect (never for bad input)
    ├── Unauthorized         401  bad secret, bad or stale signature, source not allowed
    ├── NotFound             404
    ├── RequestTimeout       408  the body did not arrive within PACEKEEPER_BODY_TIMEOUT
    ├── Conflict             409  the same signal id with a different body
    ├── PayloadTooLarge      413  body over PACEKEEPER_WEBHOOK_MAX_BODY_BYTES
    ├── UnsupportedMediaType 415  neither application/json nor text/plain
    ├── InvalidInput         422  every problem as {"field", "value", "message"}
    ├── TooManyRequests      429  this sender is over its rate; Retry-After says when to resume
    └── ServiceUnavailable   503  the database is down: nothing was accepted, send again

Every error body is ``{"error": <code>, "message": <text>}``, except 422, whose body is
``{"errors": [{"field", "value", "message"}, ...]}``. The OpenAPI document declares them with
:func:`responses`; a path no route has (404) or a method it does not take (405, with an
``Allow`` header listing every method the path takes) answers in the same shape.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.exceptions import HTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

# Echoed values are cut to this many characters: an error names the problem, it does not
# mirror the request back.
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class FieldError:
    """One problem with the input: a dotted field path, the offending value, what is wrong."""

    field: str
    value: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": json_safe(self.value), "message": self.message}


class AppError(Exception):
    """Base of every error that becomes an HTTP answer."""

    status_code = 500
    code = "internal_error"
    default_message = "internal error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class Unauthorized(AppError):
    """Authentication failed. The answer never says which check failed."""

    status_code = 401
    code = "unauthorized"
    default_message = "authentication failed"

    def __init__(self, reason: str = "") -> None:
        # The reason is for our logs only; the body is the same for every failure.
        super().__init__()
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.default_message}


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    default_message = "not found"


class RequestTimeout(AppError):
    status_code = 408
    code = "request_timeout"
    default_message = "the request body did not arrive in time"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    default_message = "too many requests from this sender; slow down"

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        seconds = max(1, math.ceil(retry_after))
        self.headers = {"Retry-After": str(seconds)}


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    default_message = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    default_message = "request body too large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "send application/json, or text/plain holding JSON"


class InvalidInput(AppError):
    """The input is wrong; ``errors`` lists every problem found."""

    status_code = 422
    code = "invalid"
    default_message = "invalid input"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = list(errors)

    def body(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"
    default_message = "temporarily unavailable; nothing was accepted, send again"


def json_safe(value: Any) -> Any:
    """A JSON-friendly, bounded rendering of an offending value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if isinstance(value, dict | list | tuple):
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return "…"
        if len(text) <= MAX_VALUE_CHARS:
            return json.loads(text)
        return text[:MAX_VALUE_CHARS] + "…"
    return json_safe(str(value))


def from_pydantic(errors: Iterable[dict[str, Any]], *, skip: int = 0) -> list[FieldError]:
    """Field errors from pydantic's ``errors()``; ``skip`` drops leading loc parts."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())][skip:]
        if err.get("type") == "json_invalid":
            # FastAPI puts the character position where the field goes, and the body itself
            # (which may hold a secret) in the input: name the body, echo nothing.
            detail = (err.get("ctx") or {}).get("error", "")
            where = f" (character {loc[0]})" if loc else ""
            out.append(FieldError("body", None, f"not valid JSON: {detail}{where}"))
            continue
        out.append(FieldError(".".join(loc) or "body", err.get("input"), err.get("msg", "")))
    return out


async def handle_app_error(request: Request, exc: Exception) -> JSONResponse:
    """The one handler: an AppError becomes its status code and body."""
    if isinstance(exc, RequestValidationError):
        # FastAPI's own parameter validation, in the same shape as ours (loc[0] is "body",
        # "query", ...).
        exc = InvalidInput(from_pydantic(exc.errors(), skip=1))
    assert isinstance(exc, AppError)
    if exc.status_code >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


# The methods a 405 looks for; the routes say which of them the path takes.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's own 405 names one route's)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (no such path, method not allowed) in the shape of ours."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's 400 for a JSON body that is not UTF-8: invalid input like any other.
        invalid = InvalidInput([FieldError("body", None, "not valid JSON: not UTF-8")])
        return await handle_app_error(request, invalid)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    try:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    except ValueError:
        code = "error"
    body = {"error": code, "message": str(exc.detail).lower()}
    return JSONResponse(body, status_code=exc.status_code, headers=headers or None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, handle_app_error)
    app.add_exception_handler(RequestValidationError, handle_app_error)
    app.add_exception_handler(HTTPException, handle_http_error)


# ---- the error bodies, for the OpenAPI document ------------------------------------------


class ErrorBody(BaseModel):
    """Every error but 422; a 409 on the webhook also names the first signal (``signal_id``)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable code, e.g. not_found")
    message: str


class FieldErrorBody(BaseModel):
    field: str = Field(min_length=1, description="dotted path of the offending field, or body")
    value: JsonValue = Field(description="the offending value, cut to 200 characters")
    message: str


class InvalidBody(BaseModel):
    """422: every problem found, each naming its field."""

    errors: list[FieldErrorBody] = Field(min_length=1)


_DESCRIPTIONS = {
    401: "Authentication failed (the answer does not say which check)",
    404: "Not found",
    408: "The body did not arrive within the body deadline",
    409: "Conflict",
    413: "Body too large",
    415: "Not application/json or text/plain",
    422: 'Invalid input: `{"errors": [{"field", "value", "message"}]}`, every problem found',
    429: "Over this sender's rate; `Retry-After` says when to resume",
    502: "The exchange did not confirm; nothing changed here, so retrying is safe",
    503: "Temporarily unavailable; nothing was accepted, send again",
}


def responses(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error codes, each with its body's schema; ``descriptions``
    replaces the generic text of some codes."""
    texts = {**_DESCRIPTIONS, **(descriptions or {})}
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "model": InvalidBody if code == 422 else ErrorBody,
            "description": texts[code],
        }
        if code == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before sending again",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    "required": True,
                }
            }
        out[code] = entry
    return out
