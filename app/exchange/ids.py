"""Deterministic client ids: the same (signal id, leg) always gives the same id.

Every retry of a leg therefore reuses its id, so a second attempt finds the first order
(by query, or by -20132 / "Duplicate order sent.") instead of placing another.

* ``clientAlgoId`` (sapi TWAP/VP): exactly 32 lowercase hex characters.
* ``newClientOrderId`` / ``listClientOrderId`` / OCO leg ids / USD-M ``clientAlgoId``:
  ``pk-<leg>-<24 hex>``, at most 36 characters of ``[a-z0-9-]``, which matches both the spot
  rule ``^[a-zA-Z0-9-_]{1,36}$`` and the futures rule ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``.
"""

from __future__ import annotations

import hashlib
import re

CLIENT_ALGO_ID = re.compile(r"^[0-9a-f]{32}$")
CLIENT_ORDER_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_LEG_CHARS = re.compile(r"[^a-z0-9]")
_MAX_LEG = 8


def _digest(signal_id: str, leg: str, kind: str) -> str:
    # Unit separators keep ("a", "bc") and ("ab", "c") apart.
    return hashlib.sha256(f"{kind}\x1f{signal_id}\x1f{leg}".encode()).hexdigest()


def client_algo_id(signal_id: str, leg: str) -> str:
    """The 32-hex ``clientAlgoId`` of a TWAP/VP leg."""
    return _digest(signal_id, leg, "algo")[:32]


def client_order_id(signal_id: str, leg: str) -> str:
    """A ``newClientOrderId``/``listClientOrderId`` for one leg: ``pk-<leg>-<hash>``."""
    label = _LEG_CHARS.sub("", leg.lower())[:_MAX_LEG] or "leg"
    return f"pk-{label}-{_digest(signal_id, leg, 'order')[:24]}"
