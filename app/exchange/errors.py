"""Every exchange failure, translated once, into errors named by what the caller must do next.

```
ExchangeError                 any failure talking to Binance (or the paper exchange)
 ├── Rejected                 the exchange said no; nothing happened; never retry as-is
 ├── Duplicate                the client id is taken: the order already exists; adopt it
 ├── AlreadyDone              nothing to cancel: the order finished, was cancelled, or is unknown
 ├── Temporary                not executed; safe to try again later (see ``retry_after``)
 └── UnknownOutcome           may or may not have executed; reconcile by client id first
      └── IncompleteListing   a paged listing did not end; its answer (e.g. "absent") is unproven
```

Every error carries Binance's ``code`` and ``msg`` when the exchange sent them, the HTTP
``status``, and the ``method`` and ``path`` of the call (never its query, body or signature).

5XX: Binance's general rule is "unknown outcome, may have executed". Only the USD-M docs
(``/fapi/``) give two 503 messages a definite meaning: "Service Unavailable." (failed, retry)
and -1008 "Request throttled by system-level protection" (failed). On ``/api`` and ``/sapi``
every 5XX is ``UnknownOutcome``, whatever its code or message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Codes whose meaning does not depend on the message.
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESPONSE = -1006
TIMEOUT = -1007
SERVER_BUSY = -1008
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SYMBOL = -1121
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
DUPLICATED_CLIENT_ORDER_ID = -4116  # USD-M "ClientOrderId is duplicated."
ALGO_FINISHED = -20124
ALGO_ID_DUPLICATED = -20132

DUPLICATE_ORDER_MSG = "Duplicate order sent."
UNKNOWN_ORDER_MSG = "Unknown order"  # "Unknown order sent.", "Unknown order list sent."
SERVICE_UNAVAILABLE_MSG = "Service Unavailable."

# Binance's recvWindow when a signed request sends none (e.g. spot newOrderTwap).
DEFAULT_RECV_WINDOW_MS = 5000

# A ban without Retry-After lasts at least this long (Binance starts bans at 2 minutes).
DEFAULT_BAN_SECONDS = 120.0
# A 429 without Retry-After (order-count limits on /sapi send none): wait out the minute.
DEFAULT_BACKOFF_SECONDS = 60.0


class ExchangeError(Exception):
    """Base of the tree; see the module docstring."""

    def __init__(
        self,
        msg: str,
        *,
        code: int | None = None,
        status: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.code = code
        self.msg = msg
        self.status = status
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        detail = f" (code {code})" if code is not None else ""
        http = f" [HTTP {status}]" if status is not None else ""
        super().__init__(f"{where}{msg}{detail}{http}")


class Rejected(ExchangeError):
    """The exchange refused the request and did nothing; retrying it unchanged fails again."""

    @property
    def is_not_found(self) -> bool:
        """The order or list asked about does not exist (or not yet: read-after-write lag).
        -20124 on a sapi algo read (subOrders) means the ``algoId`` is unknown."""
        return self.code in (NO_SUCH_ORDER, ALGO_FINISHED) or (
            self.code == CANCEL_REJECTED
            and ("does not exist" in self.msg or UNKNOWN_ORDER_MSG in self.msg)
        )


class Duplicate(ExchangeError):
    """The client id is already in use: the order was placed before; look it up and adopt it."""


class AlreadyDone(ExchangeError):
    """Cancel found nothing open: the order already finished, was cancelled, or never existed."""


class Temporary(ExchangeError):
    """Not executed (rate limit, ban, connection refused, overload); retry after ``retry_after``."""

    def __init__(self, msg: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(msg, **kw)
        self.retry_after = retry_after


class UnknownOutcome(ExchangeError):
    """The request may have executed (5XX, -1006, -1007, timeout after sending): reconcile.

    For a signed request, ``sent_ms`` is its ``timestamp`` parameter (server time, as our
    clock offset estimated it) and ``deadline_ms`` is ``timestamp + recvWindow`` (Binance's
    default 5000 ms when none was sent). Binance checks the window again just before the
    matching engine, so once the exchange's clock is past ``deadline_ms`` (plus a skew margin)
    the request can no longer take effect: a look-up by client id after that is conclusive,
    repeated a few times for read-after-write lag. Both are None for unsigned requests and
    when the outcome was judged after the answer (an unreadable body shape).
    """

    def __init__(
        self,
        msg: str,
        *,
        sent_ms: int | None = None,
        deadline_ms: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(msg, **kw)
        self.sent_ms = sent_ms
        self.deadline_ms = deadline_ms


class IncompleteListing(UnknownOutcome):
    """A paged listing (historicalOrders, subOrders) did not reach its end within the page
    limit: what it did not show is unknown, so "not found" must not be concluded from it."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    sent_ms: int | None = None,
    deadline_ms: int | None = None,
) -> ExchangeError:
    """Map an error answer (HTTP status, decoded JSON body, headers) to its consequence.

    ``sent_ms``/``deadline_ms`` (see ``UnknownOutcome``) are carried by an unknown outcome."""
    code: int | None = None
    msg = ""
    if isinstance(body, Mapping):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        msg = str(body.get("msg") or "")
    msg = msg or f"HTTP {status}"
    kw: dict[str, Any] = {"code": code, "status": status, "method": method, "path": path}
    retry_after = retry_after_seconds(headers)
    unknown = {"sent_ms": sent_ms, "deadline_ms": deadline_ms}
    fapi = path.startswith("/fapi/")

    if status == 418:
        return Temporary(msg, retry_after=retry_after or DEFAULT_BAN_SECONDS, **kw)
    if status >= 500 and not fapi:
        # /api and /sapi: "the execution status is UNKNOWN and could have been a success".
        return UnknownOutcome(msg, **unknown, **kw)
    if status == 429 or code in (TOO_MANY_REQUESTS, TOO_MANY_ORDERS, SERVER_BUSY):
        return Temporary(msg, retry_after=retry_after or DEFAULT_BACKOFF_SECONDS, **kw)
    if status == 503 and SERVICE_UNAVAILABLE_MSG in msg:
        # USD-M only: "Service Unavailable." means the request failed and may be retried.
        return Temporary(msg, retry_after=retry_after, **kw)
    if status >= 500 or status == 408 or code in (UNEXPECTED_RESPONSE, TIMEOUT):
        return UnknownOutcome(msg, **unknown, **kw)
    if code == INVALID_TIMESTAMP:
        # Rejected before reaching the engine; fixable by resyncing the clock.
        return Temporary(msg, **kw)
    if code in (ALGO_ID_DUPLICATED, DUPLICATED_CLIENT_ORDER_ID) or DUPLICATE_ORDER_MSG in msg:
        return Duplicate(msg, **kw)
    if code == ALGO_FINISHED and method == "DELETE":
        # A cancel of an algo that finished or was cancelled; on a read (subOrders) the same
        # code means "no such algoId": a Rejected whose ``is_not_found`` is true.
        return AlreadyDone(msg, **kw)
    if method == "DELETE" and code == CANCEL_REJECTED and UNKNOWN_ORDER_MSG in msg:
        return AlreadyDone(msg, **kw)
    return Rejected(msg, **kw)
