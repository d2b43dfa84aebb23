"""A stopping worker ends its pub/sub listener at once, however its threads interleave."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from redis.client import PubSub

from app.config import Settings
from tests.support import wait_until
from worker.main import LISTENER_STOP_WAIT, build_worker

# RQ's pub/sub thread reads with this timeout: a worker held by it takes this long to stop.
RQ_LISTENER_READ_TIMEOUT = 60


def test_a_worker_stops_at_once_when_its_listener_reads_the_unsubscribe_reply_first(
    redis_conn: redis.Redis, redis_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interleaving that made one CI run in three fail, made certain: UNSUBSCRIBE returns
    # only once the listener thread has read its reply. With RQ's order (unsubscribe, then
    # stop the thread) the listener then waits 60 s for a subscription that never comes.
    original = PubSub.unsubscribe

    def unsubscribe_and_let_the_listener_read_the_reply(self: PubSub, *args: Any) -> Any:
        sent = original(self, *args)
        wait_until(lambda: not self.subscribed, timeout=10)
        return sent

    monkeypatch.setattr(PubSub, "unsubscribe", unsubscribe_and_let_the_listener_read_the_reply)
    settings = Settings(_env_file=None, redis_url=redis_url, queue_name=queue_name)
    worker = build_worker(settings, redis_conn)

    started = time.monotonic()
    assert not worker.work(burst=True)
    stopped_in = time.monotonic() - started

    assert worker.pubsub_thread is not None and not worker.pubsub_thread.is_alive()
    # Generous: the listener ends when it reads the reply, in milliseconds.
    assert stopped_in < min(LISTENER_STOP_WAIT, RQ_LISTENER_READ_TIMEOUT / 2)
