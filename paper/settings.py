"""The paper exchange's own settings: environment variables prefixed ``PACEKEEPER_``.

The names are the ones the rest of Pacekeeper reads, so one ``.env`` configures both sides:
``PAPER_*`` says where the exchange listens and how it behaves; ``BINANCE_API_KEY`` /
``_SECRET`` (and ``BINANCE_ED25519_PRIVATE_KEY``) is the key it accepts, the client's; the
algo limits (``TWAP_*``, ``VP_*``, ``MAX_OPEN_*``) are Binance's, which the client checks
before it sends and the exchange enforces when it receives.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development credentials shared by the paper exchange and the client (its defaults). They
# only ever open the paper exchange; a real Binance key must be configured to trade for real.
PAPER_API_KEY = "paper-api-key-0000000000000000000000000000000000000000000000000000"
PAPER_API_SECRET = "paper-api-secret-00000000000000000000000000000000000000000000000000"


class AlgoLimits(BaseModel):
    """Binance's algo limits (its defaults): the paper exchange enforces them when an algo
    arrives, and the client (``app.config.Settings``, which has them too) checks them before
    it sends one. One definition, so the two sides read the same variables alike."""

    twap_min_duration: int = Field(300, ge=1)
    twap_max_duration: int = Field(86_400, ge=1)
    twap_min_notional: Decimal = Decimal("1000")
    twap_max_notional_spot: Decimal = Decimal("100000")
    twap_max_notional_usdm: Decimal = Decimal("1000000")
    vp_min_notional: Decimal = Decimal("10000")
    vp_max_notional: Decimal = Decimal("1000000")
    max_open_twap_spot: int = 20
    max_open_twap_usdm: int = 30
    max_open_vp: int = 10

    @model_validator(mode="after")
    def _check_twap_durations(self) -> Self:
        if self.twap_min_duration > self.twap_max_duration:
            raise ValueError("twap_min_duration must not exceed twap_max_duration")
        return self


class PaperSettings(AlgoLimits, BaseSettings):
    """Configuration of one paper exchange (``pacekeeper paper``, or a test's ``create_app``)."""

    model_config = SettingsConfigDict(
        env_prefix="PACEKEEPER_", env_file=".env", extra="ignore", case_sensitive=False
    )

    # Where `pacekeeper paper` listens.
    paper_host: str = "127.0.0.1"
    paper_port: int = 8100

    # The market and the books.
    paper_seed: int = 7
    paper_tick_seconds: float = Field(1.0, gt=0)
    # Relative standard deviation of the price move per tick; 0 freezes prices.
    paper_volatility: Decimal = Field(Decimal("0.0005"), ge=0)
    # Kline CSV file(s) whose closes are replayed one per tick (comma-separated paths).
    paper_price_csv: str | None = None
    # Commission in the received asset (spot) and on the notional (USD-M).
    paper_fee_rate: Decimal = Field(Decimal("0.001"), ge=0)
    paper_futures_fee_rate: Decimal = Field(Decimal("0.0004"), ge=0)
    paper_leverage: int = Field(20, ge=1, le=125)
    # When TWAP/VP children go out (paper/cadence.py): "binance" (about one a minute,
    # jittered time and size, as Binance hints) or "fine" (even slices, for fast tests).
    paper_algo_cadence: Literal["binance", "fine"] = "binance"
    # The fine cadence cuts a TWAP into at most this many children, at least one second apart.
    paper_twap_slices: int = Field(60, ge=1)
    # A working spot algo shows nothing executed in openOrders until it ends (Binance's FAQ:
    # "Transaction details won't be available until all TWAP orders are filled").
    paper_spot_algo_lag: bool = True
    paper_max_num_algo_orders: int = Field(5, ge=1, description="spot MAX_NUM_ALGO_ORDERS filter")
    # Run `pacekeeper paper` on a manual clock stepped with POST /paper/clock.
    paper_manual_clock: bool = False
    # Answer 429 when a minute's request weight is spent (headers are sent either way).
    paper_rate_limits: bool = True
    # More paper accounts, one per API key: "key:secret,key2:secret2" (paper/accounts.py);
    # the configured key always has one.
    paper_accounts: SecretStr = SecretStr("")
    # When a clientAlgoId may be used again (Binance does not document it): "never" (-20132
    # forever) or "after_end" (once the earlier algo is no longer WORKING).
    paper_algo_id_reuse: Literal["never", "after_end"] = "never"

    # The key the configured account answers to (the client's key and secret), and the
    # Ed25519 private key (PEM) whose signatures that account accepts as well.
    binance_api_key: SecretStr = SecretStr(PAPER_API_KEY)
    binance_api_secret: SecretStr = SecretStr(PAPER_API_SECRET)
    binance_ed25519_private_key: SecretStr | None = None
