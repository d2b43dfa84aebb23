from __future__ import annotations

import ast
import inspect
import re

from hypothesis import given
from hypothesis import strategies as st

from app.exchange import filters, models
from app.exchange.ids import CLIENT_ALGO_ID, CLIENT_ORDER_ID, client_algo_id, client_order_id

FUTURES_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def test_ids_are_deterministic_per_signal_and_leg() -> None:
    assert client_algo_id("tv-42", "entry") == client_algo_id("tv-42", "entry")
    assert client_algo_id("tv-42", "entry") != client_algo_id("tv-42", "exit")
    assert client_algo_id("tv-4", "2entry") != client_algo_id("tv-42", "entry")
    assert client_order_id("tv-42", "tp") == client_order_id("tv-42", "tp")
    assert client_order_id("tv-42", "tp") != client_order_id("tv-42", "sl")
    assert client_order_id("tv-42", "oco").startswith("pk-oco-")


@given(signal_id=st.text(max_size=200), leg=st.text(max_size=50))
def test_ids_always_match_binance_formats(signal_id: str, leg: str) -> None:
    algo = client_algo_id(signal_id, leg)
    order = client_order_id(signal_id, leg)
    assert CLIENT_ALGO_ID.match(algo) and len(algo) == 32
    assert CLIENT_ORDER_ID.match(order) and FUTURES_ID.match(order)


def test_money_code_never_uses_float() -> None:
    for module in (filters, models):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            assert not (isinstance(node, ast.Name) and node.id == "float"), module.__name__
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float))
