"""A tiny Binance REST client for the paper exchange tests: signs with hmac itself, so these
tests do not depend on ``app.exchange``."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from paper.settings import PAPER_API_KEY, PAPER_API_SECRET


def sign(query: str, secret: str = PAPER_API_SECRET) -> str:
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


class BinanceTestClient:
    def __init__(
        self, base_url: str, *, key: str = PAPER_API_KEY, secret: str = PAPER_API_SECRET
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.key = key
        self.secret = secret

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        in_body: bool = False,
        timestamp: int | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        values = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {"X-MBX-APIKEY": self.key}
        if signed:
            values.setdefault("timestamp", timestamp or int(time.time() * 1000))
            payload = urlencode(values)
            payload += "&signature=" + sign(payload, self.secret)
        else:
            payload = urlencode(values)
        wait: Any = self.http.timeout if timeout is None else httpx.Timeout(timeout)
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.http.request(method, path, content=payload, headers=headers, timeout=wait)
        return self.http.request(
            method, f"{path}?{payload}" if payload else path, headers=headers, timeout=wait
        )

    def ok(self, method: str, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        response = self.call(method, path, params, **kw)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def error(
        self, method: str, path: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[int, int]:
        """(HTTP status, Binance code) of a request expected to fail."""
        response = self.call(method, path, params, **kw)
        assert response.status_code >= 400, response.text
        return response.status_code, response.json()["code"]

    # /paper control
    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"/paper{path}", json=body)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def set_price(self, symbol: str, price: str) -> None:
        self.control("POST", "/price", {"symbol": symbol, "price": price})

    def ledger(self, **filters: str) -> list[dict[str, Any]]:
        query = urlencode(filters)
        response = self.http.get(f"/paper/ledger?{query}")
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.json()["entries"]
        return rows
