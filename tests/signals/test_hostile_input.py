"""Hostile input to the webhook is cheap: a null that means "not given" is not a 500, a
sender over its rate gets 429 with Retry-After before its body is read, and a body that
trickles in gets 408 and its connection back."""

from __future__ import annotations

import socket

import httpx

from app.config import Settings
from app.signals.throttle import SenderThrottle
from tests.signals.conftest import Receiver, configured, entry


def test_a_null_expiry_is_no_expiry(
    receiver: Receiver, http: httpx.Client, settings: Settings
) -> None:
    _, url = receiver(settings)
    body = entry(id="null-expiry", ttl=None)
    body["expires_at"] = None
    response = http.post(f"{url}/webhook", json=body)
    assert response.status_code == 202, response.text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_sender_has_a_bucket_refilled_at_its_rate() -> None:
    clock = Clock()
    throttle = SenderThrottle(rate=2.0, burst=3, clock=clock, max_senders=2)
    assert [throttle.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.take("a") == 0.5  # one token in half a second
    assert throttle.take("b") == 0.0  # another sender is not slowed down
    clock.now += 0.5
    assert throttle.take("a") == 0.0
    # Only max_senders buckets are kept: the least recently seen goes (as a full one).
    throttle.take("c")
    assert set(throttle._buckets) == {"a", "c"}


def test_a_sender_over_its_rate_gets_429_with_retry_after(
    receiver: Receiver, http: httpx.Client, settings: Settings
) -> None:
    limited = configured(
        settings, webhook_rate_limit=0.01, webhook_rate_burst=2, trusted_proxies="127.0.0.1"
    )
    _, url = receiver(limited)
    first = [http.post(f"{url}/webhook", json=entry(id=f"burst-{n}")) for n in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    over = http.post(f"{url}/webhook", content=b"x" * 10, headers={"content-type": "x/y"})
    assert over.status_code == 429  # before the content type, before the body
    assert int(over.headers["retry-after"]) >= 1
    other = http.post(
        f"{url}/webhook", json=entry(id="other-sender"), headers={"x-forwarded-for": "192.0.2.7"}
    )
    assert other.status_code == 202


def test_a_body_that_trickles_in_gets_408_and_the_connection_back(
    receiver: Receiver, settings: Settings
) -> None:
    _, url = receiver(configured(settings, body_timeout=0.5))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{"
        )
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes: it does not wait for us
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
