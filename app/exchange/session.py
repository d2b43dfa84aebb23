"""One request to Binance: encode, time-stamp, govern, sign, send, translate, retry reads.

The only place that sees httpx exceptions and Binance error bodies; everything above it
sees decoded JSON or an ``ExchangeError`` (see ``errors``). Logs name the method and path,
never the query, the body, the signature or the key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from app.exchange.auth import Credentials
from app.exchange.clock import ServerClock
from app.exchange.errors import (
    DEFAULT_RECV_WINDOW_MS,
    INVALID_TIMESTAMP,
    ExchangeError,
    IncompleteListing,
    Temporary,
    UnknownOutcome,
    translate,
)
from app.exchange.filters import to_wire
from app.exchange.ratelimit import RateGovernor

log = logging.getLogger("pacekeeper.exchange")

FORM = "application/x-www-form-urlencoded"
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
MAX_PAGES = 1000
T = TypeVar("T")
Params = Mapping[str, Any]
# Told about every request sent: (method, path, outcome code, seconds). The code is "ok", the
# Binance error code, "http_<status>", "not_sent" or "no_answer" (see app.metrics).
CallObserver = Callable[[str, str, str, float], None]


class _HideQuery(logging.Filter):
    """httpx logs every request URL at INFO; drop the query so signatures never reach logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideQuery())


def wire_value(value: Any) -> str:
    """A parameter as Binance expects it: Decimal without exponent, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return to_wire(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def encode(params: Params | None) -> list[tuple[str, str]]:
    return [(k, wire_value(v)) for k, v in (params or {}).items() if v is not None]


def _error_body(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    code = body.get("code")
    negative = isinstance(code, int) and not isinstance(code, bool) and code < 0
    return negative or body.get("success") is False


class BinanceSession:
    """Sends requests to the spot/sapi base URL or the USD-M base URL, as the path says."""

    def __init__(
        self,
        http: httpx.Client,
        settings: Any,
        *,
        credentials: Credentials | None = None,
        governor: RateGovernor | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._api_url = settings.binance_api_url.rstrip("/")
        self._fapi_url = settings.binance_fapi_url.rstrip("/")
        # A 429's Retry-After holds back every call to the server that sent it.
        self._servers = {
            url: httpx.URL(url).netloc.decode() for url in (self._api_url, self._fapi_url)
        }
        self._recv_window = settings.recv_window
        self._read_retries = settings.exchange_read_retries
        # find_algo's look-back in historicalOrders when its caller gives no since_ms.
        self._algo_lookup_days: float = getattr(settings, "algo_lookup_days", 7)
        self._auth = (credentials or Credentials.from_settings(settings)).auth()
        self._clock = clock
        self._sleep = sleep
        self.governor = governor or RateGovernor(
            margin=settings.rate_limit_margin,
            max_wait=settings.rate_limit_max_wait,
            clock=clock,
            sleep=sleep,
        )
        self.observer: CallObserver | None = None
        self.clocks = {
            "api": ServerClock(lambda: self._server_ms("/api/v3/time"), now=clock),
            "fapi": ServerClock(lambda: self._server_ms("/fapi/v1/time"), now=clock),
        }

    def _server_ms(self, path: str) -> int:
        return int(self.call("GET", path)["serverTime"])

    def _venue(self, path: str) -> str:
        return "fapi" if path.startswith("/fapi/") else "api"

    def call(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        signed: bool = False,
        recv_window: bool = True,
    ) -> Any:
        """Send once, resend once after a clock resync on -1021, retry GETs with backoff.

        Writes are never resent except after -1021, which Binance answers before the request
        reaches the matching engine; the resend carries the same parameters, so the same
        client id.
        """
        resynced = False
        attempt = 0
        while True:
            try:
                return self._send(method, path, params, signed=signed, recv_window=recv_window)
            except Temporary as exc:
                if exc.code == INVALID_TIMESTAMP and signed and not resynced:
                    offset = self.clocks[self._venue(path)].sync()
                    log.warning("%s %s: -1021, clock resynced (offset %d ms)", method, path, offset)
                    resynced = True
                    continue
                if not self._retry_read(method, attempt, exc):
                    raise
            except UnknownOutcome as exc:
                if not self._retry_read(method, attempt, exc):
                    raise
            self._sleep(min(4.0, 0.25 * 2**attempt))
            attempt += 1

    def _retry_read(self, method: str, attempt: int, exc: ExchangeError) -> bool:
        if method != "GET" or attempt >= self._read_retries:
            return False
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after > self.governor.max_wait:
            return False
        log.info("%s %s: retrying read after %s", exc.method, exc.path, type(exc).__name__)
        return True

    def _send(
        self, method: str, path: str, params: Params | None, *, signed: bool, recv_window: bool
    ) -> Any:
        pairs = encode(params)
        base = self._fapi_url if self._venue(path) == "fapi" else self._api_url
        cost = self.governor.acquire(method, path, params, server=self._servers[base])
        # When a request in doubt stops being able to take effect (see UnknownOutcome).
        sent_ms: int | None = None
        deadline_ms: int | None = None
        if signed:
            if recv_window:
                pairs.append(("recvWindow", str(self._recv_window)))
            sent_ms = self.clocks[self._venue(path)].now_ms()
            pairs.append(("timestamp", str(sent_ms)))
            deadline_ms = sent_ms + (self._recv_window if recv_window else DEFAULT_RECV_WINDOW_MS)
        encoded = urlencode(pairs).encode()
        if method in ("GET", "DELETE"):
            request = self._http.build_request(method, httpx.URL(base + path, query=encoded))
        else:
            request = self._http.build_request(
                method, base + path, content=encoded, headers={"Content-Type": FORM}
            )
        started = time.perf_counter()
        try:
            response = self._http.send(request, auth=self._auth if signed else None)
        except NOT_SENT as exc:
            self._observe(method, path, "not_sent", started)
            log.warning("%s %s not sent: %s", method, path, type(exc).__name__)
            raise Temporary(f"not sent: {type(exc).__name__}", method=method, path=path) from exc
        except httpx.HTTPError as exc:
            self._observe(method, path, "no_answer", started)
            log.warning("%s %s outcome unknown: %s", method, path, type(exc).__name__)
            raise UnknownOutcome(
                f"no answer: {type(exc).__name__}",
                method=method,
                path=path,
                sent_ms=sent_ms,
                deadline_ms=deadline_ms,
            ) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.governor.record(cost, response.status_code, response.headers)
        try:
            body = json.loads(response.content, parse_float=Decimal) if response.content else None
        except ValueError:
            body = None
        status = response.status_code
        if status >= 400 or _error_body(body):
            error = translate(
                status,
                body,
                response.headers,
                method=method,
                path=path,
                sent_ms=sent_ms,
                deadline_ms=deadline_ms,
            )
            self._observe(method, path, str(error.code or f"http_{status}"), started)
            log.warning("%s (%.0f ms)", error, elapsed_ms)
            raise error
        self._observe(method, path, "ok", started)
        log.debug("%s %s -> %d (%.0f ms)", method, path, status, elapsed_ms)
        if body is None:
            raise UnknownOutcome(
                f"unreadable answer (HTTP {status})",
                status=status,
                method=method,
                path=path,
                sent_ms=sent_ms,
                deadline_ms=deadline_ms,
            )
        return body

    def _observe(self, method: str, path: str, code: str, started: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer(method, path, code, time.perf_counter() - started)
        except Exception:  # counting a call must never fail it
            log.debug("call observer failed", exc_info=True)

    def pages(
        self, fetch: Callable[[int], tuple[list[T], int]], page_size: int, *, path: str = ""
    ) -> Iterator[T]:
        """Every row of a paged sapi listing; ``fetch(page)`` returns (rows, total).

        Stops at an empty page or once ``total`` rows were seen, never on a short page: the
        server may cap pages below ``page_size``. Raises ``IncompleteListing`` after
        ``MAX_PAGES`` pages rather than end early, so "not in the listing" is never concluded
        from part of it. (``page_size`` is what was asked; kept for callers.)
        """
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            rows, total = fetch(page)
            if not rows:
                return
            yield from rows
            seen += len(rows)
            if seen >= total:
                return
        raise IncompleteListing(
            f"listing not finished after {MAX_PAGES} pages ({seen} rows seen)",
            method="GET",
            path=path,
        )


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: Any, *, method: str, path: str) -> M:
    """Validate an answer; a shape we cannot read after a write means the outcome is unknown."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        log.error("%s %s: unexpected answer shape for %s", method, path, model.__name__)
        raise UnknownOutcome(
            f"unexpected answer shape for {model.__name__}: {exc.error_count()} errors",
            method=method,
            path=path,
        ) from None


def parse_list(model: type[M], body: Any, *, method: str, path: str) -> list[M]:
    if not isinstance(body, list):
        raise UnknownOutcome("expected a JSON array", method=method, path=path)
    return [parse(model, row, method=method, path=path) for row in body]
