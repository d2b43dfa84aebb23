"""No input makes the admin API answer 5xx, on SQLite and on PostgreSQL: numbers beyond a
row id, NUL characters, Unix times for ISO dates, 0 for a boolean are refused with 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import AUTH, add_order

REFUSED = [
    ("POST", "/api/algos/168905971349758876319744/cancel", None),  # not even 64 bits
    ("POST", "/api/algos/4294967296/cancel", None),  # over 32 bits
    ("GET", "/api/signals?market=spot%00", None),
    ("GET", "/api/signals?action=entry%00", None),
    ("GET", "/api/signals?symbol=BTC%00USDT", None),
    ("GET", "/api/signals?strategy=a%00b", None),
    ("GET", "/api/orders?kind=twap%00", None),
    ("GET", "/api/orders?market=%00", None),
    ("GET", "/api/orders?signal_id=%00", None),
    ("GET", "/api/signals/a%00b", None),
    ("GET", "/api/signals?until=0.5", None),
    ("GET", "/api/orders?since=1700000000", None),
    ("GET", "/api/signals?since=0001-01-01T00:00:00%2B05:00", None),
    ("POST", "/api/halt", {"reason": "x\u0000y"}),
    ("POST", "/api/halt", {"cancel_working": 0}),
    ("POST", "/api/algos/1/cancel", {"reason": "\u0000"}),
]


@pytest.mark.parametrize(("method", "path", "body"), REFUSED)
def test_hostile_admin_input_is_refused_without_a_server_error(
    api: TestClient, method: str, path: str, body: Any
) -> None:
    response = api.request(method, path, headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"]


def test_a_cursor_past_every_row_id_lists_from_the_newest(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        order = add_order(session)
        session.commit()
    response = api.get("/api/orders", params={"cursor": "8428833006071851"}, headers=AUTH)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [order.id]
    assert api.get("/api/halt", headers=AUTH).status_code == 200
