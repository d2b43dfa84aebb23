"""Request signing as an ``httpx.Auth``: the signature covers the payload exactly as sent.

Binance signs ``query string + request body`` (no separator), percent-encoded as on the
wire, and takes ``signature`` as the last parameter. GET and DELETE carry everything in the
query string; POST carries everything in an ``application/x-www-form-urlencoded`` body. The
signer reads the bytes httpx will send, so what is signed and what is sent cannot differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import SecretStr

API_KEY_HEADER = "X-MBX-APIKEY"


class Signer(Protocol):
    def sign(self, payload: bytes) -> str:
        """The value of the ``signature`` parameter, already safe to put on the wire."""
        ...


class HmacSigner:
    """HMAC-SHA256 keyed with the API secret, hex encoded."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(<secret>)"


class Ed25519Signer:
    """Ed25519 over the payload, base64 then percent-encoded (Binance's recommended key type)."""

    def __init__(self, private_key_pem: str) -> None:
        key = load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("binance_ed25519_private_key is not an Ed25519 private key")
        self._key = key

    def sign(self, payload: bytes) -> str:
        return quote(base64.b64encode(self._key.sign(payload)).decode(), safe="")

    def __repr__(self) -> str:
        return "Ed25519Signer(<key>)"


class BinanceAuth(httpx.Auth):
    """Adds the API key header and appends ``signature`` to the query (GET/DELETE) or body."""

    requires_request_body = True

    def __init__(self, api_key: str, signer: Signer) -> None:
        self._api_key = api_key
        self._signer = signer

    def __repr__(self) -> str:
        return f"BinanceAuth(<key>, {self._signer!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        query = request.url.query
        body = request.content
        signature = self._signer.sign(query + body).encode()
        headers = request.headers.copy()
        headers[API_KEY_HEADER] = self._api_key
        if body:
            body = body + b"&signature=" + signature
            headers["Content-Length"] = str(len(body))
            url = request.url
        else:
            sep = b"&" if query else b""
            url = request.url.copy_with(query=query + sep + b"signature=" + signature)
        yield httpx.Request(
            request.method, url, headers=headers, content=body, extensions=request.extensions
        )


@dataclass(frozen=True)
class Credentials:
    """The API key and what signs with it: the Ed25519 key when set, else the HMAC secret."""

    api_key: SecretStr
    api_secret: SecretStr | None = None
    ed25519_private_key: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Credentials:
        return cls(
            settings.binance_api_key,
            settings.binance_api_secret,
            settings.binance_ed25519_private_key,
        )

    def auth(self) -> BinanceAuth:
        signer: Signer
        if self.ed25519_private_key is not None:
            signer = Ed25519Signer(self.ed25519_private_key.get_secret_value())
        elif self.api_secret is not None:
            signer = HmacSigner(self.api_secret.get_secret_value())
        else:
            raise ValueError("no API secret or Ed25519 key configured")
        return BinanceAuth(self.api_key.get_secret_value(), signer)
