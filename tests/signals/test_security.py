"""Authentication checks as pure functions: secrets, signatures, source addresses."""

from __future__ import annotations

import pytest

from app.config import TRADINGVIEW_IPS, Settings
from app.signals.security import Authenticator, client_ip, parse_networks, sign

CURRENT = b"current-secret-0123456789abcdef"
PREVIOUS = b"previous-secret-0123456789abcdef"
BODY = b'{"action":"exit","symbol":"BTCUSDT"}'
NOW = 1_800_000_000


def auth(**kwargs: object) -> Authenticator:
    return Authenticator([CURRENT, PREVIOUS], tolerance=300, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "ok"),
    [
        (CURRENT.decode(), True),
        (PREVIOUS.decode(), True),
        (CURRENT.decode() + "x", False),
        (CURRENT.decode()[:-1], False),
        ("", False),
        (None, False),
        (12345, False),
        (["current-secret-0123456789abcdef"], False),
    ],
)
def test_body_secret_accepts_the_current_and_the_previous_secret_only(
    given: object, ok: bool
) -> None:
    assert auth().body_secret(given).ok is ok


@pytest.mark.parametrize(
    ("key", "sent_at", "body", "ok"),
    [
        (CURRENT, NOW, BODY, True),
        (PREVIOUS, NOW, BODY, True),
        (CURRENT, NOW - 300, BODY, True),
        (CURRENT, NOW + 300, BODY, True),
        (CURRENT, NOW - 301, BODY, False),  # stale
        (CURRENT, NOW + 301, BODY, False),  # from the future
        (b"another-secret-0123456789abcdef", NOW, BODY, False),
    ],
)
def test_signature_is_checked_with_both_secrets_within_the_tolerance(
    key: bytes, sent_at: int, body: bytes, ok: bool
) -> None:
    signature = sign(key, sent_at, body)
    assert auth().signature(str(sent_at), signature, BODY, NOW).ok is ok


def test_signature_covers_the_timestamp_and_every_byte_of_the_body() -> None:
    signature = sign(CURRENT, NOW, BODY)
    assert not auth().signature(str(NOW), signature, BODY + b" ", NOW).ok
    assert not auth().signature(str(NOW - 1), signature, BODY, NOW).ok
    assert not auth().signature(str(NOW), None, BODY, NOW).ok
    assert not auth().signature(None, signature, BODY, NOW).ok
    assert not auth().signature("soon", signature, BODY, NOW).ok
    assert auth().signature(str(NOW), signature.upper().replace("SHA256=", "sha256="), BODY, NOW).ok


TRUSTED = parse_networks(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("52.89.214.238", None, "52.89.214.238"),
        # An untrusted peer cannot choose its address by writing the header.
        ("203.0.113.9", "52.89.214.238", "203.0.113.9"),
        # Behind a trusted proxy, the first untrusted hop from the right is the sender.
        ("10.0.0.2", "52.89.214.238", "52.89.214.238"),
        ("10.0.0.2", "52.89.214.238, 10.0.0.7", "52.89.214.238"),
        ("10.0.0.2", "1.2.3.4, 52.89.214.238", "52.89.214.238"),
        ("10.0.0.2", "", "10.0.0.2"),
    ],
)
def test_forwarded_for_is_trusted_only_from_configured_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_allow_list_with_the_tradingview_preset() -> None:
    settings = Settings(
        _env_file=None,
        webhook_secret=CURRENT.decode(),
        webhook_allowed_ips=["tradingview", "192.0.2.0/24"],
    )
    checks = Authenticator.from_settings(settings)
    address: str | None
    for address in (*TRADINGVIEW_IPS, "192.0.2.77", "::ffff:52.89.214.238"):
        assert checks.source_allowed(address).ok, address
    for address in ("52.89.214.239", "127.0.0.1", "testclient", None):
        assert not checks.source_allowed(address).ok, address


def test_no_allow_list_means_any_source() -> None:
    assert auth().source_allowed("198.51.100.1").ok
