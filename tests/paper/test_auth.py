"""Signed-request checks: API key, signature over query + body, timestamp and recvWindow."""

from __future__ import annotations

import base64
import time
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PAPER_API_KEY
from tests.paper.binance import BinanceTestClient, sign
from tests.paper.conftest import paper_settings
from tests.support import serve

ACCOUNT = "/api/v3/account"


def now_ms() -> int:
    return int(time.time() * 1000)


def test_documented_signature_vector_matches_our_helper() -> None:
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert sign(payload, secret) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_signed_request_passes_in_query_and_in_form_body(bn: BinanceTestClient) -> None:
    assert bn.ok("GET", ACCOUNT)["canTrade"] is True
    assert bn.ok("GET", ACCOUNT, in_body=True)["accountType"] == "SPOT"


def test_missing_api_key_and_wrong_api_key_answer_401(bn: BinanceTestClient) -> None:
    query = urlencode({"timestamp": now_ms()})
    query += "&signature=" + sign(query)
    missing = bn.http.get(f"{ACCOUNT}?{query}")
    assert (missing.status_code, missing.json()["code"]) == (401, -2014)
    wrong = bn.http.get(f"{ACCOUNT}?{query}", headers={"X-MBX-APIKEY": "not-the-key"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "code": -2015,
        "msg": "Invalid API-key, IP, or permissions for action.",
    }


def test_bad_signature_answers_1022(bn: BinanceTestClient) -> None:
    other = BinanceTestClient(bn.http.base_url.__str__(), secret="another-secret")
    try:
        assert other.error("GET", ACCOUNT) == (400, -1022)
    finally:
        other.close()


def test_signature_covers_the_query_followed_by_the_body(bn: BinanceTestClient) -> None:
    query = "symbol=BTCUSDT"
    body = urlencode({"timestamp": now_ms()})
    good = sign(query + body)
    headers = {"X-MBX-APIKEY": PAPER_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    response = bn.http.request(
        "GET", f"/api/v3/openOrders?{query}", content=f"{body}&signature={good}", headers=headers
    )
    assert response.status_code == 200, response.text
    tampered = bn.http.request(
        "GET",
        "/api/v3/openOrders?symbol=ETHUSDT",
        content=f"{body}&signature={good}",
        headers=headers,
    )
    assert tampered.json()["code"] == -1022


def test_query_string_wins_over_body(bn: BinanceTestClient) -> None:
    query = urlencode({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    body = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    headers = {"X-MBX-APIKEY": PAPER_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    response = bn.http.post(
        f"/api/v3/order?{query}", content=f"{body}&signature={sign(query + body)}", headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["symbol"] == "ETHUSDT"


def test_timestamp_rules(bn: BinanceTestClient) -> None:
    assert bn.error("GET", ACCOUNT, timestamp=now_ms() + 5000) == (400, -1021)
    assert bn.error("GET", ACCOUNT, timestamp=now_ms() - 6000) == (400, -1021)
    assert bn.ok("GET", ACCOUNT, {"recvWindow": 10000}, timestamp=now_ms() - 6000)
    assert bn.error("GET", ACCOUNT, {"recvWindow": 60001}) == (400, -1131)


def test_missing_timestamp_or_signature_answers_1102(bn: BinanceTestClient) -> None:
    headers = {"X-MBX-APIKEY": PAPER_API_KEY}
    no_timestamp = bn.http.get(f"{ACCOUNT}?signature={sign('')}", headers=headers)
    assert no_timestamp.json()["code"] == -1102
    no_signature = bn.http.get(f"{ACCOUNT}?timestamp={now_ms()}", headers=headers)
    assert no_signature.json()["code"] == -1102
    assert "signature" in no_signature.json()["msg"]


def test_parameter_errors(bn: BinanceTestClient) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"}
    assert bn.error("POST", "/api/v3/order", order) == (400, -1102)
    assert bn.error("POST", "/api/v3/order", {**order, "quantity": "1e-3"}) == (400, -1100)
    assert bn.error("POST", "/api/v3/order", {**order, "quantity": "0.01", "side": "UP"}) == (
        400,
        -1117,
    )
    assert bn.error("POST", "/api/v3/order", {**order, "quantity": "0.01", "type": "X"}) == (
        400,
        -1116,
    )
    assert bn.error("POST", "/api/v3/order", {**order, "quantity": "1", "symbol": "NOPE"}) == (
        400,
        -1121,
    )
    query = "symbol=BTCUSDT&symbol=ETHUSDT&" + urlencode({"timestamp": now_ms()})
    duplicated = bn.http.get(
        f"/api/v3/openOrders?{query}&signature={sign(query)}",
        headers={"X-MBX-APIKEY": PAPER_API_KEY},
    )
    assert duplicated.json()["code"] == -1101


def test_ed25519_signatures_pass_when_a_key_is_configured() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    settings = paper_settings(binance_ed25519_private_key=pem)
    with serve(create_app(settings, clock=ManualClock())) as server:
        client = BinanceTestClient(server.url)
        query = urlencode({"timestamp": now_ms()})
        signature = base64.b64encode(key.sign(query.encode())).decode()
        response = client.http.get(
            f"{ACCOUNT}?{query}&{urlencode({'signature': signature})}",
            headers={"X-MBX-APIKEY": PAPER_API_KEY},
        )
        assert response.status_code == 200, response.text
        client.close()
