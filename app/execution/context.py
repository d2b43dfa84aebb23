"""What execution code needs from its process: settings, the exchange client, sessions, Redis.

Workers build one ``ExecContext`` per process (``worker/resources.py``) and hand it to every
job; the monitor builds its own. Nothing here opens a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from app.accounts import DEFAULT_ACCOUNT, AccountConfig
from app.clock import Clock, SystemClock
from app.config import Settings
from app.exchange.client import BinanceClient

# Binance accepts a request up to 1 s ahead of its clock; allow that much skew on top.
CLOCK_SKEW_S = 1.0
# The longest pause between two look-ups of a reconcile (placement.LOOKUP_DELAYS).
LOOKUP_SLACK_S = 5.0


class UnknownAccount(LookupError):
    """A signal names an account this process has no key for (removed since it arrived)."""


@dataclass
class ExecContext:
    settings: Settings
    client: BinanceClient
    sessions: sessionmaker[Session]
    redis: Redis | None = None
    # Seconds one call may wait for an order in doubt before parking it (``placement``):
    # a signal's job sets it; None (the monitor, tools) waits until the outcome is known.
    doubt_patience: float | None = None
    # The named account this context acts on, ``client`` being its client; every
    # configured account's client and settings by name (app/accounts.py).
    account: str = DEFAULT_ACCOUNT
    clients: dict[str, BinanceClient] = field(default_factory=dict)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)
    # Where execution and monitoring read the time and wait; tests pass a ManualClock.
    clock: Clock = field(default_factory=SystemClock)

    def for_account(self, name: str) -> ExecContext:
        """This context on another account; ``UnknownAccount`` when it is not configured."""
        if name == self.account:
            return self
        client = self.clients.get(name)
        if client is None:
            raise UnknownAccount(name)
        return replace(self, account=name, client=client)

    @property
    def account_config(self) -> AccountConfig | None:
        return self.accounts.get(self.account)

    def in_flight_horizon(self) -> float:
        """Seconds after an order was marked ``sending`` by which its request can no longer
        reach the matching engine, so a look-up that finds nothing after it is conclusive.

        The client may wait for the rate-limit governor before signing, and resends once after
        -1021 (an answer that can take ``http_timeout``); each signed request is valid for
        ``recvWindow`` plus Binance's 1 s of tolerated skew.
        """
        s = self.settings
        return 2 * s.rate_limit_max_wait + s.http_timeout + s.recv_window / 1000 + CLOCK_SKEW_S

    def longest_reconcile(self) -> float:
        """Seconds a reconcile that finds nothing can take, from the send to "absent": the
        in-flight horizon, then the read-after-write window (which starts no earlier than the
        first look-up), plus one look-up interval. The RQ job timeout must exceed it."""
        return self.in_flight_horizon() + self.settings.reconcile_lag_window + LOOKUP_SLACK_S
