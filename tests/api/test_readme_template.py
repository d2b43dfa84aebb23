"""The README's TradingView entry template, read from the README itself, works as shown: sent
as TradingView sends it (``text/plain``, its placeholders filled) to the receiver and executed
by an RQ worker on the paper exchange over real HTTP, it is placed, not refused after its
``202``. Sized below the TWAP minimum as the README says, it is refused after its ``202`` and
the notification is the one the README shows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Order, Signal
from app.notify.service import Cooldowns, deliver
from tests.api.test_canaries import run_worker
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.notify.receiver import Receiver, receiving
from tests.ops.test_readme import PLACEHOLDERS, README, fill, tradingview_templates
from tests.support import wait_until


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


def send_readme_entry(
    api: TestClient,
    settings: Settings,
    rconn: redis.Redis,
    paper_control: httpx.Client,
    sessions: sessionmaker[Session],
    **changes: Any,
) -> Signal:
    """Post the README's entry template as TradingView would, and let a worker execute it."""
    price = {"symbol": "BTCUSDT", "price": PLACEHOLDERS["close"]}
    paper_control.post("/price", json=price).raise_for_status()
    body = {**fill(tradingview_templates()[0]), "secret": TEST_WEBHOOK_SECRET, **changes}
    answer = api.post("/webhook", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert answer.status_code == 202, answer.text
    signal_id = answer.json()["signal_id"]

    def row() -> Signal:
        with sessions() as session:
            found = session.get(Signal, signal_id)
            assert found is not None
            return found

    wait_until(lambda: row().status == "queued")  # enqueued after the answer
    run_worker(settings, rconn)
    return row()


def test_the_readme_tradingview_entry_is_placed_on_the_paper_exchange(
    api: TestClient,
    api_settings: Settings,
    rconn: redis.Redis,
    paper_control: httpx.Client,
    sessions: sessionmaker[Session],
) -> None:
    signal = send_readme_entry(api, api_settings, rconn, paper_control, sessions)

    assert (signal.status, signal.status_reason) == ("working", "twap working on the exchange")
    with sessions() as session:
        (order,) = session.scalars(select(Order).where(Order.signal_id == signal.id))
    assert (order.kind, order.status) == ("twap", "working")
    ledger = paper_control.get("/ledger", params={"client_id": order.client_id}).json()
    (placed,) = ledger["entries"]
    assert [placed[k] for k in ("kind", "symbol", "status")] == ["spot_twap", "BTCUSDT", "WORKING"]
    notional = Decimal(placed["quantity"]) * Decimal(PLACEHOLDERS["close"])
    assert notional >= api_settings.twap_min_notional


def test_the_readme_shows_the_refusal_the_template_gets_below_the_minimum(
    api: TestClient,
    api_settings: Settings,
    rconn: redis.Redis,
    paper_control: httpx.Client,
    sessions: sessionmaker[Session],
    receiver: Receiver,
) -> None:
    section = README.split("### From TradingView", 1)[1].split("\n### ", 1)[0]
    small = re.search(r'sized at `"quote_quantity":\s+"(\d+)"`', section)
    assert small is not None, "the README says what size is refused"
    shown = re.findall(r"```text\n(.*?)```", section, re.DOTALL)[0]
    title, reason, sender = [line.strip() for line in shown.strip().splitlines()]

    signal = send_readme_entry(
        api, api_settings, rconn, paper_control, sessions, quote_quantity=small.group(1)
    )
    assert signal.status == "refused"
    assert paper_control.get("/ledger").json()["entries"] == []

    settings = api_settings.model_copy(update={"notify_urls": SecretStr(receiver.url())})
    report = deliver(sessions, settings, cooldowns=Cooldowns())
    assert report.failed == 0, report
    (message,) = receiver.messages
    assert (message["title"], message["type"]) == (title, "failure")
    first, second = message["message"].splitlines()
    assert first == reason
    # The sender's id and strategy as the README shows them; the time is when it was refused.
    assert second.rsplit(", ", 1)[0] == sender.rsplit(", ", 1)[0]
    assert signal.status_reason is not None and signal.status_reason in reason
