"""Admin reads answer while signals flow: on SQLite they read a snapshot and never queue for
the write lock the intake takes for every signal."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from app.config import Settings
from tests.conftest import TEST_ADMIN_TOKEN
from tests.signals.conftest import Receiver, entry

READERS = 50
PATHS = ("/api/signals?limit=50", "/api/orders", "/api/algos", "/api/halt")


def test_fifty_concurrent_admin_reads_while_signals_flow_answer_no_5xx(
    settings: Settings, receiver: Receiver, job_keys: Any
) -> None:
    settings = settings.model_copy(update={"webhook_rate_limit": 0})  # one sender: no 429s
    _, url = receiver(settings)
    statuses: Counter[int] = Counter()
    flowing = threading.Event()
    stop = threading.Event()
    accepted: list[int] = []

    def send_signals() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                body = entry(id=uuid.uuid4().hex, strategy=f"load-{uuid.uuid4().hex[:6]}")
                accepted.append(http.post("/webhook", json=body).status_code)
                flowing.set()

    def read(n: int) -> list[int]:
        headers = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
            return [http.get(path).status_code for path in PATHS]

    writers = [threading.Thread(target=send_signals) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        assert flowing.wait(30)
        with ThreadPoolExecutor(READERS) as pool:
            for codes in pool.map(read, range(READERS)):
                statuses.update(codes)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)

    assert statuses == Counter({200: READERS * len(PATHS)}), statuses
    assert accepted and set(accepted) <= {202}, Counter(accepted)
