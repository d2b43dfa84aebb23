"""Signed-request checks, in Binance's order: API key, recvWindow, signature, timestamp.

The payload is the query string followed by the body, exactly as sent, without the
``signature`` parameter. HMAC-SHA256 signatures are hex (case-insensitive); when an
Ed25519 private key is configured, base64 Ed25519 signatures over the same payload pass too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from paper.errors import BinanceError, mandatory
from paper.params import Params
from paper.settings import PaperSettings

MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
INVALID_KEY = BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
BAD_KEY_FORMAT = BinanceError(-2014, "API-key format invalid.", 401)
BAD_SIGNATURE = BinanceError(-1022, "Signature for this request is not valid.")


def strip_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))


class Verifier:
    """Checks one signed request against the keys of the paper accounts and their secrets
    (the Ed25519 key, when configured, belongs to the configured API key)."""

    def __init__(self, settings: PaperSettings, secrets: dict[str, str]) -> None:
        self.api_key = settings.binance_api_key.get_secret_value()
        self.secrets = {key: secret.encode() for key, secret in secrets.items()}
        self.ed25519: Ed25519PublicKey | None = None
        if settings.binance_ed25519_private_key is not None:
            pem = settings.binance_ed25519_private_key.get_secret_value().encode()
            key = load_pem_private_key(pem, password=None)
            if isinstance(key, Ed25519PrivateKey):
                self.ed25519 = key.public_key()

    def known(self, api_key: str | None) -> str:
        """The account key an ``X-MBX-APIKEY`` header names, or Binance's -2014 / -2015."""
        if not api_key:
            raise BAD_KEY_FORMAT
        found = ""
        for key in self.secrets:  # compare with every key: no early exit to time
            if hmac.compare_digest(api_key.encode(), key.encode()):
                found = key
        if not found:
            raise INVALID_KEY
        return found

    def check(
        self, *, api_key: str | None, query: str, body: str, params: Params, server_ms: int
    ) -> str:
        """Verify a signed request; the key of the account it acts on."""
        key = self.known(api_key)
        recv_window = self._recv_window(params)
        timestamp = params.integer("timestamp")
        if timestamp is None:
            raise mandatory("timestamp")
        signature = params.get("signature")
        if signature is None:
            raise mandatory("signature")
        payload = strip_signature(query) + strip_signature(body)
        if not self._valid(key, payload, signature):
            raise BAD_SIGNATURE
        if timestamp >= 10**15:  # microseconds, as spot allows
            timestamp //= 1000
        if timestamp >= server_ms + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server_ms - timestamp > recv_window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return key

    @staticmethod
    def _recv_window(params: Params) -> float:
        raw = params.get("recvWindow")
        if raw is None:
            return DEFAULT_RECV_WINDOW
        window = params.decimal("recvWindow")
        assert window is not None
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        if window <= 0:
            raise mandatory("recvWindow")
        return float(window)

    def _valid(self, key: str, payload: str, signature: str) -> bool:
        expected = hmac.new(self.secrets[key], payload.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature.lower()):
            return True
        if self.ed25519 is None or key != self.api_key:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
            self.ed25519.verify(raw, payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True
