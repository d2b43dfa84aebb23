"""``pacekeeper send FILE|-``: post a signal to the receiver, signed.

The header signature scheme, for senders that can set headers (TradingView cannot; it
puts the secret in the body instead):

- ``X-Pacekeeper-Timestamp``: Unix time in seconds;
- ``X-Pacekeeper-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with
  ``PACEKEEPER_WEBHOOK_SECRET``, over ``f"{timestamp}.{body}"`` (the exact bytes sent).

The receiver rejects a timestamp outside ``PACEKEEPER_WEBHOOK_SIGNATURE_TOLERANCE``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
from typing import Any, TextIO

import httpx

from app.config import Settings, get_settings

TIMESTAMP_HEADER = "X-Pacekeeper-Timestamp"
SIGNATURE_HEADER = "X-Pacekeeper-Signature"
SIGNATURE_PREFIX = "sha256="


class SendError(Exception):
    """The signal could not be read or sent; the message says why."""


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Pacekeeper-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def signed_headers(body: bytes, secret: str, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(body, secret, timestamp),
    }


def read_signal(source: str, stdin: TextIO | None = None) -> bytes:
    """The raw bytes of a JSON object from a file or ``-`` (standard input)."""
    try:
        if source == "-":
            text = (stdin or sys.stdin).read()
            body = text.encode()
        else:
            with open(source, "rb") as handle:
                body = handle.read()
    except OSError as exc:
        raise SendError(f"cannot read {source}: {exc.strerror}") from None
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        # The position only, never the text: the body may carry a secret.
        raise SendError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise SendError(f"{source} is not UTF-8 text") from None
    if not isinstance(parsed, dict):
        raise SendError(f"{source} must hold a JSON object (a signal), not {type(parsed).__name__}")
    return body.strip()


def default_url(settings: Settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


def send_signal(
    body: bytes,
    *,
    url: str,
    secret: str,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``body`` to ``{url}/webhook``, signed when a secret is given."""
    headers = signed_headers(body, secret) if secret else {"Content-Type": "application/json"}
    target = url.rstrip("/") + "/webhook"
    if client is not None:
        return client.post(target, content=body, headers=headers)
    with httpx.Client(timeout=timeout) as own:
        return own.post(target, content=body, headers=headers)


def _has_body_secret(body: bytes) -> bool:
    parsed: Any = json.loads(body)
    return isinstance(parsed, dict) and bool(parsed.get("secret"))


def send_main(
    args: argparse.Namespace,
    settings: Settings | None = None,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``send`` sub-command: 0 on a 2xx answer, 1 on any other answer, 2 on bad input."""
    out = out or sys.stdout
    err = err or sys.stderr
    settings = settings or get_settings()
    url = args.url or default_url(settings)
    secret = settings.webhook_secret.get_secret_value()
    try:
        body = read_signal(args.file, stdin)
    except SendError as exc:
        print(f"pacekeeper send: {exc}", file=err)
        return 2
    if not secret:
        if not _has_body_secret(body):
            print(
                "pacekeeper send: PACEKEEPER_WEBHOOK_SECRET is not set and the signal has no "
                '"secret" field; set one of them',
                file=err,
            )
            return 2
        print("pacekeeper send: no PACEKEEPER_WEBHOOK_SECRET; sending unsigned", file=err)
    try:
        response = send_signal(body, url=url, secret=secret, timeout=settings.http_timeout)
    except httpx.HTTPError as exc:
        print(f"pacekeeper send: {url}/webhook: {type(exc).__name__}: {exc}", file=err)
        return 1
    print(f"HTTP {response.status_code} {response.reason_phrase}", file=out)
    try:
        print(json.dumps(response.json(), indent=2), file=out)
    except ValueError:
        if response.text:
            print(response.text, file=out)
    return 0 if response.is_success else 1
