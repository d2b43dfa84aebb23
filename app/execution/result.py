"""What running one signal came to: the state to leave it in, and why."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import SignalStatus


@dataclass(frozen=True)
class Result:
    status: SignalStatus
    reason: str | None = None
    # The signal fanned out to one child per account and was finished there already.
    children: tuple[str, ...] = ()
    # The run left the signal in ``status`` itself, in its last transaction
    # (``claims.conclude``); ``orders`` are the signal's client ids, read there.
    concluded: bool = False
    orders: tuple[str, ...] = ()
