"""Who may post a signal: source-address allow-list, body secret, header signature.

TradingView cannot set headers, so it authenticates with a ``secret`` field in the body;
senders that can sign use ``X-Pacekeeper-Timestamp`` and ``X-Pacekeeper-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.{raw body}"`` keyed with the webhook
secret. Both accept the current and the previous secret, so a secret can be rotated
without losing signals. Every comparison is constant-time, and a failure says nothing
about which check failed (the reason only reaches our logs).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from app.config import Settings

TIMESTAMP_HEADER = "x-pacekeeper-timestamp"
SIGNATURE_HEADER = "x-pacekeeper-signature"
SIGNATURE_SCHEME = "sha256="

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-Pacekeeper-Signature`` value for ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_SCHEME + mac.hexdigest()


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(text: str | None, networks: Sequence[Network]) -> bool:
    address = _address(text)
    return address is not None and any(address in net for net in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The sender's address: the direct peer, unless that peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right, skipping the
    trusted hops; the first untrusted address is the sender. Anyone can write the header,
    so from an untrusted peer it is ignored entirely.
    """
    if not forwarded_for or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # for our logs only


class Authenticator:
    """The checks of one receiver, prepared once from the settings."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        *,
        tolerance: int = 300,
        allowed: Sequence[Network] = (),
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._secrets = tuple(secrets)
        # Digests of equal length, so comparing them reveals nothing about a secret's length.
        self._digests = tuple(hashlib.sha256(secret).digest() for secret in secrets)
        self.tolerance = tolerance
        self.allowed = tuple(allowed)
        self.trusted_proxies = tuple(trusted_proxies)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            settings.webhook_secrets(),
            tolerance=settings.webhook_signature_tolerance,
            allowed=parse_networks(settings.webhook_allowed_ips),
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return self._secrets

    def source(self, peer: str | None, forwarded_for: str | None) -> str | None:
        return client_ip(peer, forwarded_for, self.trusted_proxies)

    def source_allowed(self, address: str | None) -> Verdict:
        if not self.allowed or _within(address, self.allowed):
            return Verdict(True)
        return Verdict(False, f"source {address} is not in the allow-list")

    def body_secret(self, given: object) -> Verdict:
        if not isinstance(given, str) or not given:
            return Verdict(False, "no secret in the body")
        digest = hashlib.sha256(given.encode()).digest()
        # Compare with every secret, without stopping at the first match.
        matches = [hmac.compare_digest(digest, known) for known in self._digests]
        return Verdict(True) if any(matches) else Verdict(False, "wrong secret")

    def signature(
        self, timestamp: str | None, signature: str | None, body: bytes, now: float
    ) -> Verdict:
        if not timestamp or not signature:
            return Verdict(False, "signature or timestamp header missing")
        try:
            sent_at = int(timestamp.strip())
        except ValueError:
            return Verdict(False, "timestamp is not an integer")
        if abs(now - sent_at) > self.tolerance:
            return Verdict(False, f"timestamp {sent_at} is outside ±{self.tolerance} s")
        given = signature.strip().lower().encode()
        matches = [
            hmac.compare_digest(given, sign(secret, timestamp.strip(), body).encode())
            for secret in self._secrets
        ]
        return Verdict(True) if any(matches) else Verdict(False, "wrong signature")
