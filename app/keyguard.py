"""Key-permission guard: no account trades with an API key that can withdraw.

A trading daemon's key needs reading and trading, nothing more; a key that can withdraw turns
a leaked secret (or a compromised host) into an emptied account. So each account's key is
read (``GET /sapi/v1/account/apiRestrictions``) when a worker starts and then daily
(``PACEKEEPER_KEY_CHECK_INTERVAL``), and the verdict is stored per account in ``controls``
(``key_guard:<account>``), where every worker reads it before executing a signal:

* ``enableWithdrawals``: the account is refused (its signals end ``refused`` with the
  reason); the other accounts keep trading. Remove the permission; the next check (or a
  worker restart) lifts the refusal.
* no IP restriction (``ipRestrict`` false): a warning by default.
  ``PACEKEEPER_KEY_GUARD_IP_RESTRICTION`` = ``warn`` (default) | ``refuse`` (treat it like
  withdrawals) | ``ignore`` (say nothing: a key whose host has no fixed IP, knowingly).

A check that cannot read the restrictions (network, Binance down) leaves the last verdict in
place and is logged; it never blocks trading by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange.models import ApiRestrictions
from app.models import Control, Event, utcnow

log = logging.getLogger(__name__)

PREFIX = "key_guard:"


@dataclass(frozen=True)
class KeyVerdict:
    account: str
    refused: str | None = None
    warnings: list[str] = field(default_factory=list)


def judge(account: str, restrictions: ApiRestrictions, ip_policy: str) -> KeyVerdict:
    """Pure: what a key's restrictions mean for trading with it."""
    refused: list[str] = []
    warnings: list[str] = []
    if restrictions.enableWithdrawals:
        refused.append("its API key can withdraw (enableWithdrawals); remove that permission")
    if not restrictions.ipRestrict:
        note = "its API key has no IP restriction (ipRestrict false)"
        if ip_policy == "refuse":
            refused.append(note)
        elif ip_policy == "warn":
            warnings.append(note)
    return KeyVerdict(account, "; ".join(refused) or None, warnings)


def check_keys(clients: dict[str, Any], sessions: Any, ip_policy: str) -> list[KeyVerdict]:
    """Read every account's key restrictions, store and log the verdicts."""
    verdicts = []
    for account, client in clients.items():
        try:
            restrictions = client.api_restrictions()
        except Exception as exc:
            log.warning("key guard: account %s not checked: %s", account, exc)
            continue
        verdict = judge(account, restrictions, ip_policy)
        verdicts.append(verdict)
        for warning in verdict.warnings:
            log.warning("key guard: account %s: %s", account, warning)
        if verdict.refused:
            log.error("key guard: account %s refused: %s", account, verdict.refused)
        with session_scope(sessions) as session:
            _store(session, verdict)
    return verdicts


def _store(session: Session, verdict: KeyVerdict) -> None:
    key = PREFIX + verdict.account
    value = {
        "refused": verdict.refused,
        "warnings": verdict.warnings,
        "checked_at": utcnow().isoformat(),
    }
    row = session.get(Control, key, with_for_update=True)
    before = row.value.get("refused") if row is not None else None
    if row is None:
        session.add(Control(key=key, value=value))
    else:
        row.value = value
    if before != verdict.refused:
        message = (
            f"account {verdict.account} refused: {verdict.refused}"
            if verdict.refused
            else f"account {verdict.account} may trade again"
        )
        session.add(Event(kind="key_guard", message=message, data={"account": verdict.account}))


def refusal(session: Session, account: str) -> str | None:
    """Why ``account`` may not trade now, per its last key check; None when it may."""
    row = session.get(Control, PREFIX + account)
    if row is None:
        return None
    reason = row.value.get("refused")
    return str(reason) if reason else None
