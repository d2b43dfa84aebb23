"""Structured JSON logs, one line per event, with secrets redacted at one choke point.

Every record that reaches the handler installed by :func:`configure_logging` passes
through :class:`RedactingFilter` first. The filter renders the message with its args,
redacts it, redacts the ``extra`` fields and renders and redacts the traceback, so no
formatter or handler downstream ever sees a raw secret. Redaction has two layers:

- known values: the webhook secrets, the admin token, the Binance credentials and the
  notification URLs (with the tokens inside them) from
  :class:`~app.config.Settings` (plus anything passed to :func:`register_secret`), and
  their URL- and JSON-escaped forms;
- patterns, for secrets we were never told about: ``signature=...`` query parameters,
  ``X-MBX-APIKEY`` headers, ``"secret": ...`` style fields, ``Authorization: Bearer ...``,
  ``sha256=<hex>`` signatures, passwords in URLs and PEM private keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from app.config import ConfigError, Settings
from app.notify.targets import secret_parts

REDACTED = "[REDACTED]"

# Known values shorter than this are not redacted by value: replacing every "abc" in every
# line would destroy the logs and protect nothing (the settings guard rejects short secrets).
MIN_KNOWN_SECRET_LENGTH = 8

# A key whose name says it holds a secret. Matched inside JSON, dict reprs, headers and
# query strings; the value after it is replaced whatever it is.
_SECRET_KEY = (
    r"[A-Za-z0-9_.-]*(?:secret|signature|api[_-]?key|apikey|token|password|passwd|passphrase"
    r"|authorization)[A-Za-z0-9_.-]*"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys (Ed25519 / RSA API keys).
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
            re.DOTALL,
        ),
        REDACTED,
    ),
    # An Authorization header, whatever its scheme: everything up to the end of the value.
    (
        re.compile(r"(?i)(authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\\\r\n,}]+"),
        r"\1" + REDACTED,
    ),
    # Bearer / Basic credentials wherever else they appear.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[)[A-Za-z0-9._~+/=-]+"), r"\1\2" + REDACTED),
    # Passwords in URLs: scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(@)"), r"\1" + REDACTED + r"\2"),
    # Quoted values: "secret": "x", 'X-MBX-APIKEY': 'x', api_key='x', \"secret\": \"x\"
    (
        re.compile(
            r"(?i)(?P<head>(?<![A-Za-z0-9_.-])(?P<kq>\\?[\"']?)"
            + _SECRET_KEY
            + r"(?P=kq)\s*[:=]\s*"
            r"(?P<vq>\\?[\"']))(?P<val>(?:(?!(?P=vq)).)*)(?P=vq)"
        ),
        r"\g<head>" + REDACTED + r"\g<vq>",
    ),
    # Unquoted values: signature=abc&..., secret=abc, X-MBX-APIKEY: abc, "secret": 123
    (
        re.compile(
            r"(?i)(?P<head>(?<![A-Za-z0-9_.-])" + _SECRET_KEY + r"\\?[\"']?\s*[:=]\s*)"
            r"(?![\"'\\\[{(]|" + re.escape(REDACTED) + r")(?P<val>[^\s\"'&,;}\])<>]+)"
        ),
        r"\g<head>" + REDACTED,
    ),
    # HMAC signatures in the `sha256=<hex>` form, whatever field carries them.
    (re.compile(r"(?i)\b(sha256=)[0-9a-f]{32,}"), r"\1" + REDACTED),
)

_SECRET_KEY_RE = re.compile(r"(?i)^" + _SECRET_KEY + r"$")

# Every pattern above needs one of these in the text (a key name, a scheme, "PRIVATE KEY",
# "://", "sha256="): one search spares most lines the seven substitutions.
_MAY_MATCH = re.compile(
    r"(?i)secret|signature|key|token|pass|authorization|bearer|basic|://|sha256="
)

# uvicorn's ANSI-coloured copy of its message: noise in a JSON line.
_DROPPED_EXTRAS = frozenset({"color_message"})

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class Redactor:
    """Replaces known secret values and secret-looking patterns with ``[REDACTED]``."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: tuple[str, ...] = ()
        self.add(*known)

    def add(self, *values: str | None) -> None:
        """Redact these values (and their URL- and JSON-escaped forms) from now on."""
        variants = set(self._known)
        for value in values:
            if not value or len(value) < MIN_KNOWN_SECRET_LENGTH:
                continue
            for form in (value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]):
                variants.add(form)
            # A multi-line value (a PEM key) can be logged a line at a time.
            variants.update(
                line.strip()
                for line in value.splitlines()
                if len(line.strip()) >= MIN_KNOWN_SECRET_LENGTH and "-----" not in line
            )
        with self._lock:
            # Longest first, so a secret that contains another is replaced whole.
            self._known = tuple(sorted(variants, key=len, reverse=True))

    def text(self, value: str) -> str:
        for known in self._known:
            if known in value:
                value = value.replace(known, REDACTED)
        if _MAY_MATCH.search(value) is None:
            return value
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        """A JSON-safe, redacted copy of an ``extra`` value."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth > 6:
            return REDACTED
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = self.text(str(key))
                out[name] = REDACTED if _SECRET_KEY_RE.match(name) else self.value(item, depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item, depth + 1) for item in value]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return self.text(value if isinstance(value, str) else str(value))


class RedactingFilter(logging.Filter):
    """The choke point: renders and redacts message, args, extras, traceback and stack."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not take the secret with it
            message = f"{record.msg!s} (unformattable args: {type(exc).__name__})"
        record.msg = self.redactor.text(message)
        record.args = None
        for key in list(record.__dict__):
            if key in _RECORD_ATTRS:
                continue
            if key in _DROPPED_EXTRAS:
                del record.__dict__[key]
            elif _SECRET_KEY_RE.match(key):
                record.__dict__[key] = REDACTED
            else:
                record.__dict__[key] = self.redactor.value(record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        # The traceback is now text; dropping exc_info stops any later formatter from
        # rendering the raw exception again.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, exc, stack."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in event:
                event[key] = value
        if record.exc_text:
            event["exc"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        return json.dumps(event, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A human-readable line (``PACEKEEPER_LOG_JSON=false``), extras as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        extras = " ".join(
            f"{key}={json.dumps(value, default=str)}"
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRS
        )
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line} {extras}"
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


_redactor = Redactor()
_handler: logging.Handler | None = None

# Loggers that install their own handlers (uvicorn) or log full signed URLs at INFO (httpx).
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq", "alembic")
_QUIET_LOGGERS = ("httpx", "httpcore")


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values a Settings object holds."""
    values = [
        settings.webhook_secret,
        settings.webhook_secret_previous,
        settings.admin_token,
        settings.binance_api_key,
        settings.binance_api_secret,
        settings.binance_ed25519_private_key,
    ]
    out = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
    from app.accounts import account_secrets, configured_accounts

    # A bad account setting is reported where the accounts are loaded; redaction must not fail.
    with contextlib.suppress(ConfigError):
        out += account_secrets(configured_accounts(settings))
    # Notification URLs carry their services' tokens (PACEKEEPER_NOTIFY_URLS).
    return out + [part for url in settings.notify_url_list() for part in secret_parts(url)]


def register_secret(*values: str | None) -> None:
    """Redact these values from every log line from now on (e.g. a generated secret)."""
    _redactor.add(*values)


def redact(text: str) -> str:
    """Redact a string with the process-wide redactor (for output that is not a log line)."""
    return _redactor.text(text)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Install the redacting handler on the root logger; calling it again replaces it."""
    global _handler
    _redactor.add(*settings_secrets(settings))

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter(_redactor))
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())

    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    # Anything else on the root logger would print unredacted records: ours is the only one.
    for existing in list(root.handlers):
        if isinstance(existing, logging.StreamHandler) and not _is_test_capture(existing):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    _handler = handler

    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_thread
    return handler


def _is_test_capture(handler: logging.Handler) -> bool:
    # pytest's capture handlers live on the root logger; leave them to pytest.
    return type(handler).__module__.startswith("_pytest")


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """Uncaught exceptions go through the redacting handler instead of raw stderr."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("pacekeeper").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("pacekeeper").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
