"""app.heap: a service process's startup objects are frozen out of full collections."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_startup_heap_is_frozen_once_and_garbage_is_still_collected() -> None:
    out = _run(
        """
        import gc
        import app.main  # a service's imports: tens of thousands of objects
        from app.heap import freeze_startup_heap
        class Node:
            def __init__(self): self.me = self
        Node()  # a cycle startup left behind: collected, not frozen
        first = freeze_startup_heap()
        frozen = gc.get_freeze_count()
        again = freeze_startup_heap()
        after = Node()
        import weakref
        ref = weakref.ref(after)
        del after
        gc.collect()
        print(first, again, frozen > 10000, gc.get_freeze_count() <= frozen, ref() is None)
        """
    )
    assert out == "True False True True True"


def test_the_receiver_freezes_its_heap_when_it_starts(tmp_path: Path) -> None:
    from app import migrate

    url = f"sqlite:///{tmp_path / 'heap.db'}"
    migrate.upgrade(url)
    out = _run(
        f"""
        import gc, os
        os.environ.update(PACEKEEPER_ENV="test", PACEKEEPER_WEBHOOK_SECRET="s" * 32,
                          PACEKEEPER_DATABASE_URL={url!r}, PACEKEEPER_REDIS_URL="")
        from fastapi.testclient import TestClient
        from app.main import create_app
        before = gc.get_freeze_count()
        with TestClient(create_app()) as client:
            client.get("/health")
            print(before, gc.get_freeze_count() > 10000)
        """
    )
    assert out == "0 True"


def test_a_worker_freezes_its_heap_when_it_is_built(redis_url: str) -> None:
    out = _run(
        f"""
        import gc, os
        os.environ.update(PACEKEEPER_ENV="test", PACEKEEPER_DATABASE_URL="sqlite://")
        from redis import Redis
        from app.config import Settings
        from worker.main import build_worker
        before = gc.get_freeze_count()
        build_worker(Settings(), Redis.from_url({redis_url!r}))
        print(before, gc.get_freeze_count() > 10000)
        """
    )
    assert out == "0 True"
