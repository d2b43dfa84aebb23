"""Structured logs: one JSON object per line, and canary secrets never in the output."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from app.config import Settings
from app.logging import REDACTED, Redactor, configure_logging

ROOT = Path(__file__).resolve().parents[2]

CANARY_WEBHOOK = "canary-webhook-7f3a9c1e5b2d4f60"
CANARY_PREVIOUS = "canary-previous-0a1b2c3d4e5f6071"
CANARY_ADMIN = "canary-admin-token-9e8d7c6b5a4f"
CANARY_KEY = "canaryApiKey5f4e3d2c1b0a99887766554433221100"
CANARY_SECRET = "canaryApiSecret0011223344556677889900aabbccdd"
CANARIES = (CANARY_WEBHOOK, CANARY_PREVIOUS, CANARY_ADMIN, CANARY_KEY, CANARY_SECRET)


def canary_settings(**overrides: object) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": CANARY_WEBHOOK,
        "webhook_secret_previous": CANARY_PREVIOUS,
        "admin_token": CANARY_ADMIN,
        "binance_api_key": CANARY_KEY,
        "binance_api_secret": CANARY_SECRET,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put back everything configure_logging changes in this process."""
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq", "alembic", "httpx", "httpcore")
    saved = [
        (
            n,
            list(logging.getLogger(n).handlers),
            logging.getLogger(n).level,
            logging.getLogger(n).propagate,
        )
        for n in names
    ]
    saved_root = (list(root.handlers), root.level, sys.excepthook, threading.excepthook)
    try:
        yield
    finally:
        for name, handlers, level, propagate in saved:
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        sys.excepthook, threading.excepthook = saved_root[2], saved_root[3]
        logging.captureWarnings(False)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Configure logging into a buffer; restore the process's logging state afterwards."""
    stream = io.StringIO()
    with restored_logging():
        configure_logging(canary_settings(), stream=stream)
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def assert_no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text


def test_each_event_is_one_json_line_with_extras(log_stream: io.StringIO) -> None:
    logging.getLogger("pacekeeper.test").warning(
        "signal %s accepted", "tv-42", extra={"signal_id": "abc", "latency_ms": 3.5}
    )
    (event,) = lines(log_stream)
    assert event["level"] == "WARNING"
    assert event["logger"] == "pacekeeper.test"
    assert event["msg"] == "signal tv-42 accepted"
    assert event["signal_id"] == "abc"
    assert event["latency_ms"] == 3.5
    assert str(event["ts"]).endswith("+00:00")


def test_known_secrets_are_redacted_from_message_args_and_extras(log_stream: io.StringIO) -> None:
    log = logging.getLogger("pacekeeper.test")
    log.info("webhook secret is %s and admin %s", CANARY_WEBHOOK, CANARY_ADMIN)
    log.info(f"api key {CANARY_KEY} previous {CANARY_PREVIOUS}")
    log.info(
        "request",
        extra={
            "body": {"note": f"prefix {CANARY_SECRET} suffix", "nested": [CANARY_WEBHOOK]},
            "raw": f"key={CANARY_KEY}".encode(),
        },
    )
    output = log_stream.getvalue()
    assert_no_canary(output)
    assert output.count(REDACTED) >= 6
    assert len(lines(log_stream)) == 3


def test_secret_patterns_are_redacted_without_knowing_the_value(log_stream: io.StringIO) -> None:
    log = logging.getLogger("pacekeeper.exchange")
    unknown = "unknownValue1234567890"
    log.info("GET /api/v3/order?symbol=BTCUSDT&timestamp=1&signature=%s", unknown)
    log.info("headers %s", {"X-MBX-APIKEY": unknown + "A", "Accept": "application/json"})
    log.info("X-MBX-APIKEY: %s", unknown + "B")
    log.info('body {"secret": "%s", "id": "tv-1"}', unknown + "C")
    log.info("Authorization: Bearer %s", unknown + "D")
    log.info("X-Pacekeeper-Signature: sha256=%s", "ab" * 32)
    log.info("connected to postgresql+psycopg://pk:%s@db/pk", unknown + "E")
    log.info("sent", extra={"headers": {"authorization": "Bearer " + unknown + "F"}})
    output = log_stream.getvalue()
    assert unknown not in output
    assert "ab" * 32 not in output
    # What is not secret stays readable.
    assert "symbol=BTCUSDT" in output
    assert '"id": "tv-1"' in lines(log_stream)[3]["msg"]  # type: ignore[operator]


def test_exception_tracebacks_are_redacted(log_stream: io.StringIO) -> None:
    log = logging.getLogger("pacekeeper.worker")
    try:
        try:
            raise ValueError(f"signature rejected for key {CANARY_KEY}")
        except ValueError as inner:
            raise RuntimeError(f"retry with secret {CANARY_SECRET}") from inner
    except RuntimeError:
        log.exception("job failed for %s", "tv-7")
    (event,) = lines(log_stream)
    assert "RuntimeError" in str(event["exc"])
    assert "ValueError" in str(event["exc"])  # the cause is kept, redacted
    assert_no_canary(log_stream.getvalue())


def test_uncaught_exceptions_in_threads_go_through_the_redactor(log_stream: io.StringIO) -> None:
    def boom() -> None:
        raise RuntimeError(f"token {CANARY_ADMIN}")

    thread = threading.Thread(target=boom, name="boom")
    thread.start()
    thread.join()
    (event,) = lines(log_stream)
    assert event["level"] == "CRITICAL"
    assert "RuntimeError" in str(event["exc"])
    assert_no_canary(log_stream.getvalue())


def test_uvicorn_loggers_are_routed_through_the_choke_point(log_stream: io.StringIO) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging(canary_settings(), stream=log_stream)
    uvicorn_error.error(
        "bad request with secret=%s",
        CANARY_WEBHOOK,
        extra={"color_message": "bad request with secret=\x1b[1m%s\x1b[0m"},
    )
    (event,) = lines(log_stream)
    assert event["logger"] == "uvicorn.error"
    assert "color_message" not in event
    assert_no_canary(log_stream.getvalue())


def test_configuring_twice_keeps_one_handler(log_stream: io.StringIO) -> None:
    configure_logging(canary_settings(), stream=log_stream)
    logging.getLogger("x").warning("once")
    assert len(lines(log_stream)) == 1


def test_text_format_is_redacted_too() -> None:
    stream = io.StringIO()
    with restored_logging():
        configure_logging(canary_settings(log_json=False), stream=stream)
        logging.getLogger("pacekeeper").warning("key %s", CANARY_KEY, extra={"s": CANARY_SECRET})
    assert "WARNING" in stream.getvalue()
    assert_no_canary(stream.getvalue())


def test_an_uncaught_exception_in_a_process_never_prints_the_secret() -> None:
    env = {
        **os.environ,
        "PACEKEEPER_WEBHOOK_SECRET": CANARY_WEBHOOK,
        "PACEKEEPER_BINANCE_API_SECRET": CANARY_SECRET,
    }
    code = (
        "from app.config import Settings\n"
        "from app.logging import configure_logging\n"
        "configure_logging(Settings(_env_file=None))\n"
        "import os\n"
        "raise RuntimeError('boom ' + os.environ['PACEKEEPER_BINANCE_API_SECRET'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "uncaught exception" in result.stderr
    assert "RuntimeError" in result.stderr
    assert CANARY_SECRET not in result.stderr + result.stdout


def test_escaped_forms_of_a_known_secret_are_redacted() -> None:
    secret = 'p@ss/w"rd+with=chars!long'
    redactor = Redactor([secret])
    for form in (secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]):
        assert redactor.text(f"value {form} end") == f"value {REDACTED} end"


def test_redactor_leaves_ordinary_text_alone() -> None:
    redactor = Redactor([CANARY_WEBHOOK])
    text = "entry BTCUSDT buy 0.5 twap 1800s; bad secret for signal tv-1"
    assert redactor.text(text) == text
    assert redactor.text(f"x {CANARY_WEBHOOK} y") == f"x {REDACTED} y"


@pytest.mark.parametrize(
    "text",
    [
        "PASSWD=hunter2hunter2",
        "ApiKey: abcdefgh12345678",
        "api-key='abcdefgh12345678'",
        "Basic dXNlcjpwYXNzd29yZA==",
        "BEARER abcdefgh12345678",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----",
        "redis://default:abcdefgh12345678@cache:6379/0",
        "X-Hub-Signature-256: SHA256=" + "cd" * 32,
        '{"Passphrase": "abcdefgh12345678"}',
        "session_TOKEN=abcdefgh12345678",
    ],
)
def test_the_quick_check_never_spares_a_line_a_pattern_would_redact(text: str) -> None:
    redacted = Redactor().text(text)
    assert redacted != text and REDACTED in redacted
    for secret in ("abcdefgh12345678", "hunter2hunter2", "MIIabc", "cd" * 32, "dXNlcjpw"):
        assert secret not in redacted
