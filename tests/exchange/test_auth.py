from __future__ import annotations

import base64
from urllib.parse import unquote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from pydantic import SecretStr

from app.exchange.auth import BinanceAuth, Credentials, Ed25519Signer, HmacSigner

# Binance's documented example (spot rest-api.md, "SIGNED endpoint examples").
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def _send(request: httpx.Request, auth: httpx.Auth) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        client.send(request, auth=auth)
    return seen[0]


def test_hmac_signer_matches_binance_documented_vector() -> None:
    assert HmacSigner(DOC_SECRET).sign(DOC_PAYLOAD.encode()) == DOC_SIGNATURE


def test_post_body_is_signed_exactly_as_sent_with_signature_last() -> None:
    request = httpx.Request(
        "POST",
        "https://exchange.invalid/api/v3/order",
        content=DOC_PAYLOAD.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    sent = _send(request, BinanceAuth("my-key", HmacSigner(DOC_SECRET)))
    assert sent.content == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}".encode()
    assert sent.headers["Content-Length"] == str(len(sent.content))
    assert sent.headers["X-MBX-APIKEY"] == "my-key"
    assert sent.url.query == b""


def test_get_query_is_signed_exactly_as_sent() -> None:
    url = httpx.URL("https://exchange.invalid/api/v3/order", query=DOC_PAYLOAD.encode())
    sent = _send(httpx.Request("GET", url), BinanceAuth("k", HmacSigner(DOC_SECRET)))
    assert sent.url.query == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}".encode()
    assert sent.content == b""


def test_ed25519_signature_verifies_and_is_percent_encoded() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    signature = Ed25519Signer(pem).sign(DOC_PAYLOAD.encode())
    assert not set("+/=") & set(signature)
    key.public_key().verify(base64.b64decode(unquote(signature)), DOC_PAYLOAD.encode())


def test_credentials_prefer_ed25519_key_and_hide_secrets() -> None:
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    creds = Credentials(SecretStr("key"), SecretStr("hmac-secret"), SecretStr(pem))
    auth = creds.auth()
    assert "Ed25519Signer" in repr(auth)
    assert "hmac-secret" not in repr(creds) and "PRIVATE KEY" not in repr(creds)
    assert "secret-value" not in repr(HmacSigner("secret-value"))


def test_ed25519_signer_refuses_other_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    pem = (
        generate_private_key(SECP256R1())
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        Ed25519Signer(pem)
