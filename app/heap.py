"""A service process's long-lived heap, kept out of the cyclic garbage collector's scans.

A worker or receiver holds some 150,000 objects after its imports (SQLAlchemy's mappers,
pydantic's validators, RQ, httpx, the settings). CPython's collector walks every one of
them in each full (generation 2) collection: about 60 ms of CPU in one go, a pause in the
middle of whichever job or request triggered it (measured: 0.8 ms per signal job on
average, in 60 ms steps). Those objects live as long as the process, so walking them finds
nothing. ``gc.freeze`` moves them into the permanent generation, which the collector
skips; what jobs and requests allocate afterwards is collected as before.
"""

from __future__ import annotations

import gc
import os

_frozen: list[int] = []  # the pid that froze its heap (a fork inherits the frozen set)


def freeze_startup_heap() -> bool:
    """Collect what startup left behind, then freeze every object still alive: once per
    process, when it has imported and built what it keeps (later calls, as a test process
    building many apps makes, change nothing). True when this call froze it."""
    if _frozen == [os.getpid()]:
        return False
    gc.collect()
    gc.freeze()
    _frozen[:] = [os.getpid()]
    return True
