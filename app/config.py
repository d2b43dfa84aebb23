"""One Settings class for every process; environment variables prefixed ``PACEKEEPER_``."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.notify.kinds import NOTIFY_KINDS, parse_kinds
from paper.settings import PAPER_API_KEY, PAPER_API_SECRET, AlgoLimits

# TradingView's documented webhook senders; `PACEKEEPER_WEBHOOK_ALLOWED_IPS=tradingview` adds them.
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")

# The paper exchange by default: its address, and the development key it accepts (which only
# ever opens the paper exchange; a real Binance key must be configured to trade for real).
PAPER_URL = "http://127.0.0.1:8100"

# Values that must never guard a real webhook.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "password", "token", "replace-me", "xxx", "your-secret"}
)
MIN_SECRET_LENGTH = 16
# The shortest TWAP Binance runs (spot clamps shorter ones to it, futures refuses them).
BINANCE_MIN_TWAP_DURATION = 300


def is_paper_url(url: str, paper_host: str = "127.0.0.1") -> bool:
    """Is ``url`` a paper exchange: a loopback host, the compose service ``paper`` or
    ``paper_host``? Anything else (Binance, a proxy to it) is treated as the real exchange."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "paper", paper_host.lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """A setting is missing or unusable: the process cannot run until it is fixed."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(AlgoLimits, BaseSettings):
    """Configuration for the receiver, workers and monitor (the paper exchange has its own)."""

    model_config = SettingsConfigDict(
        env_prefix="PACEKEEPER_", env_file=".env", extra="ignore", case_sensitive=False
    )

    env: Literal["dev", "test", "prod"] = "dev"

    # Intake
    webhook_secret: SecretStr = SecretStr("")
    # The previous secret, still accepted during a rotation.
    webhook_secret_previous: SecretStr | None = None
    webhook_max_body_bytes: int = Field(8192, ge=256, le=1_048_576)
    webhook_signature_tolerance: int = Field(
        300, ge=1, description="seconds, for header signatures"
    )
    dedupe_window: int = Field(86_400, ge=1, description="seconds a body digest counts as a repeat")
    # Refuse (422) a symbol the exchange's exchangeInfo does not list (accept when unknown).
    webhook_check_symbols: bool = True
    # Per sender: requests a second, and the burst allowed above it (429 beyond; rate 0: off).
    webhook_rate_limit: float = Field(20.0, ge=0, description="requests per second per sender")
    webhook_rate_burst: int = Field(100, ge=1)
    # Seconds a request's body may take to arrive after its headers (408 after that).
    body_timeout: float = Field(10.0, gt=0)
    webhook_allowed_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_token: SecretStr = SecretStr("")

    # Storage and queue
    database_url: str = "sqlite:///./var/pacekeeper.db"
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    queue_name: str = "pacekeeper"
    # Worker liveness: a worker's registry key expires this long after its last heartbeat, and
    # abandoned jobs (a worker killed mid-job) are looked for this often.
    worker_ttl: int = Field(60, ge=15)
    worker_maintenance_interval: int = Field(30, ge=5)
    # Jobs one worker process runs at once (threads): a burst of 50 alerts goes out together.
    # Each job spends most of its time waiting for the exchange, so threads are cheap here.
    worker_concurrency: int = Field(50, ge=1, le=500)

    # Exchange
    binance_api_url: str = PAPER_URL
    binance_fapi_url: str = PAPER_URL
    binance_api_key: SecretStr = SecretStr(PAPER_API_KEY)
    binance_api_secret: SecretStr = SecretStr(PAPER_API_SECRET)
    # Optional Ed25519 private key (PEM) used instead of the HMAC secret.
    binance_ed25519_private_key: SecretStr | None = None
    recv_window: int = Field(5000, ge=1, le=60_000)
    http_timeout: float = Field(10.0, gt=0)
    exchange_info_ttl: float = Field(300.0, ge=0, description="seconds exchangeInfo is cached")
    price_max_age: float = Field(
        1.0, ge=0, description="seconds an entry may use a price another job read (0: never)"
    )
    exchange_read_retries: int = Field(3, ge=0, le=10, description="retries of a failed GET")
    rate_limit_prefix: str = "pk:rl:"
    rate_limit_margin: float = Field(0.1, ge=0, lt=1, description="share of each budget kept free")
    rate_limit_max_wait: float = Field(
        60.0, ge=0, description="longest wait for a rate limit before failing as temporary"
    )

    # Named accounts beside `default` (the key above): app/accounts.py reads each one's
    # PACEKEEPER_ACCOUNT_<NAME>_* variables.
    accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Key-permission guard (app/keyguard.py): each key's apiRestrictions are read when a
    # worker starts and this often; a key that can withdraw is refused. A key without an IP
    # restriction: "warn" (default), "refuse" it too, or "ignore" (knowingly).
    key_check_interval: float = Field(86_400.0, gt=0, description="seconds")
    key_guard_ip_restriction: Literal["warn", "refuse", "ignore"] = "warn"

    # Algo limits: paper.settings.AlgoLimits (Binance's by default; the paper exchange reads
    # the same variables).
    # How far back find_algo searches historicalOrders when its caller gives no start time
    # (a TWAP runs up to 24 h; an outage can add days).
    algo_lookup_days: float = Field(7.0, ge=1, le=90, description="days")

    # Risk guards
    max_notional_per_signal: Decimal | None = None
    max_notional_per_symbol: Decimal | None = None
    allow_stacking: bool = False

    # Execution
    # A worker that claimed a signal refreshes its lease as it goes; a signal left
    # `processing` this long (its worker died) is re-enqueued by the sweeper.
    execution_lease: float = Field(60.0, ge=1, description="seconds")
    # Claims of one signal (first run, retries after temporary errors, take-overs) before
    # it ends `failed` rather than being tried later still.
    execution_max_attempts: int = Field(6, ge=1, le=100)
    # Seconds a signal's job waits, on its thread, for an earlier signal of the same strategy
    # and symbol to settle (``app.execution.turns``) before it is put back for a later run.
    turn_patience: float = Field(5.0, ge=0, le=60, description="seconds")
    # Seconds a signal's job looks up an order in doubt before it parks it and runs again
    # when the next look-up is due (``app.execution.placement``): no thread waits out the
    # read-after-write window.
    doubt_patience: float = Field(2.0, ge=0, le=120, description="seconds")
    # Binance's read-after-write lag: an order may answer "does not exist" for a while after
    # it executed (20-60 s measured). After a request can no longer take effect (its
    # timestamp + recvWindow, or the in-flight horizon) and after the first look-up, an order
    # is looked up for this long more before it counts as absent and may be sent again.
    reconcile_lag_window: float = Field(30.0, ge=0, description="seconds")
    # Limit of a STOP_LOSS_LIMIT when the signal gives only the stop: stop x (1 - slippage)
    # for a sell, x (1 + slippage) for a buy.
    stop_limit_slippage: Decimal = Field(Decimal("0.005"), ge=0, lt=1)

    # Monitor and pace
    monitor_interval: float = Field(5.0, gt=0)
    sweep_interval: float = Field(10.0, gt=0)
    reconcile_interval: float = Field(300.0, gt=0)
    # Seconds between runs that record the execution quality (VWAP from klines, slippage)
    # of the signals whose execution has ended (``app.execution.quality``).
    quality_interval: float = Field(30.0, gt=0)
    # Exchange reads one monitor cycle runs at once (threads sharing the HTTP client, which
    # keeps 20 connections alive): over a 50 ms link, n reads take about n x 50 ms / this.
    monitor_concurrency: int = Field(16, ge=1, le=64)
    # Pace policy defaults (a signal's `pace` overrides them); see app/monitoring/pace.py.
    pace_grace: Decimal = Field(Decimal("0.1"), ge=0, le=1, description="fraction of duration")
    pace_min_ratio: Decimal = Field(Decimal("0.5"), ge=0, le=1)
    pace_slack: Decimal = Field(Decimal("0.02"), ge=0, le=1)
    pace_stall_seconds: Decimal | None = Field(
        None,
        ge=0,
        description="how long a visible stall is tolerated; unset: the grace period (TWAP), "
        "PACE_VP_STALL_SECONDS without a fill (VP); 0 disables the stall rule",
    )
    pace_vp_stall_seconds: Decimal = Field(Decimal("600"), gt=0)

    # Where the paper exchange is (`pacekeeper dev` starts it there; its own settings are
    # paper/settings.py's, read from the same PACEKEEPER_PAPER_* variables).
    paper_host: str = "127.0.0.1"
    paper_port: int = 8100

    # Notifications (app/notify): Apprise URLs, comma-separated. URLs carry tokens, so the
    # whole value is a secret: never logged, never in a message.
    notify_urls: SecretStr = SecretStr("")
    # Which notifications are sent (app.notify.kinds.NOTIFY_KINDS, or `all`); empty: none.
    notify_events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(NOTIFY_KINDS)
    )
    notify_interval: float = Field(5.0, gt=0, description="seconds between delivery runs")
    notify_max_attempts: int = Field(10, ge=1, le=100)
    # Seconds between two looks at the components of /health/ready (component_down/_up).
    component_check_interval: float = Field(30.0, gt=0)

    # Receiver
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("webhook_allowed_ips", "trusted_proxies", "accounts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("notify_events", mode="before")
    @classmethod
    def _notify_kinds(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return parse_kinds(value)
        return value

    @field_validator("webhook_allowed_ips")
    @classmethod
    def _expand_presets(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for item in value:
            if item.lower() == "tradingview":
                out.extend(TRADINGVIEW_IPS)
                continue
            ipaddress.ip_network(item, strict=False)  # raises ValueError naming the entry
            out.append(item)
        return out

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if self.twap_min_duration < BINANCE_MIN_TWAP_DURATION and not self.uses_paper_exchange():
            # Binance clamps (spot) or refuses (futures) a shorter TWAP: accepting one here
            # would promise a schedule the exchange does not keep.
            raise ValueError(
                f"twap_min_duration ({self.twap_min_duration}) must be at least "
                f"{BINANCE_MIN_TWAP_DURATION} s, Binance's minimum, unless both exchange URLs "
                f"are the paper exchange (not {self.binance_api_url} / {self.binance_fapi_url})"
            )
        return self

    def uses_paper_exchange(self) -> bool:
        """Do both exchange URLs point at a paper exchange: this machine (where `pacekeeper
        paper` and `dev` run it), the docker-compose service `paper`, or PAPER_HOST?"""
        return all(
            is_paper_url(url, self.paper_host)
            for url in (self.binance_api_url, self.binance_fapi_url)
        )

    def webhook_secrets(self) -> list[bytes]:
        """The secrets accepted now (current first, then the one being rotated out)."""
        secrets = [self.webhook_secret.get_secret_value()]
        if self.webhook_secret_previous is not None:
            secrets.append(self.webhook_secret_previous.get_secret_value())
        return [s.encode() for s in secrets if s]

    @property
    def monitor_queue_name(self) -> str:
        """The queue of the monitor's periodic jobs (cycles, reconciliation, the intake
        sweep), which workers take before any signal: a backlog of signals cannot delay a
        pace cancel or a bracket."""
        return f"{self.queue_name}-monitor"

    @property
    def notify_queue_name(self) -> str:
        """The queue of the notification jobs, which workers take after ``queue_name``'s."""
        return f"{self.queue_name}-notify"

    def notify_url_list(self) -> list[str]:
        """``PACEKEEPER_NOTIFY_URLS`` as a list (commas or whitespace between URLs)."""
        return [part for part in re.split(r"[,\s]+", self.notify_urls.get_secret_value()) if part]

    def check_webhook_secret(self) -> None:
        """Refuse to serve webhooks guarded by an empty or placeholder secret."""
        for name, secret in (
            ("PACEKEEPER_WEBHOOK_SECRET", self.webhook_secret),
            ("PACEKEEPER_WEBHOOK_SECRET_PREVIOUS", self.webhook_secret_previous),
        ):
            if secret is None and name.endswith("PREVIOUS"):
                continue
            value = secret.get_secret_value() if secret is not None else ""
            if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"{name} is empty, a placeholder or shorter than {MIN_SECRET_LENGTH} "
                    "characters; set a long random value (e.g. `openssl rand -hex 32`)"
                )


@lru_cache
def get_settings() -> Settings:
    return Settings()
