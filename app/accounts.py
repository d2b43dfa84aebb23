"""Named exchange accounts: one signal can drive several, each with its own key and limits.

``PACEKEEPER_ACCOUNTS=main,alt`` names them; each reads
``PACEKEEPER_ACCOUNT_<NAME>_API_KEY`` and ``_API_SECRET`` (or ``_ED25519_PRIVATE_KEY``), and
optionally ``_SIZE_MULTIPLIER`` (scales a signal's size), ``_MAX_NOTIONAL`` (per signal, in
quote) and ``_MARKETS`` (``spot``, ``usdm`` or both; default both). The single-key settings
(``PACEKEEPER_BINANCE_API_KEY`` …) are always the account ``default``, so a deployment that
never names an account keeps working unchanged.

Accounts are read from the environment and ``.env`` (the names are dynamic, so pydantic
cannot declare them); a bad or missing value is a ``ConfigError`` naming the variable. The
secrets stay ``SecretStr`` here and never leave this process: jobs carry account names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from app.config import ConfigError, Settings
from app.exchange.auth import Credentials
from app.signals.schemas import Signal

DEFAULT_ACCOUNT = "default"
ALL_ACCOUNTS = "all"
# The account column of a signal sent to several accounts (each child row has its own).
FANOUT = "*"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
MARKETS = ("spot", "usdm")


@dataclass(frozen=True)
class AccountConfig:
    name: str
    credentials: Credentials
    size_multiplier: Decimal = Decimal(1)
    max_notional: Decimal | None = None
    markets: tuple[str, ...] = MARKETS

    def __repr__(self) -> str:  # never the credentials, even masked
        return f"AccountConfig(name={self.name!r}, markets={self.markets!r})"


def _environ(settings: Settings, environ: Mapping[str, str] | None) -> dict[str, str]:
    if environ is not None:
        return {k.upper(): v for k, v in environ.items()}
    values: dict[str, str] = {}
    env_file = settings.model_config.get("env_file")
    if isinstance(env_file, str) and Path(env_file).is_file():
        values.update({k.upper(): v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k.upper(): v for k, v in os.environ.items()})
    return values


def _decimal(env: dict[str, str], var: str) -> Decimal | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{var} ({raw}) must be a number") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"{var} ({raw}) must be greater than 0")
    return value


def _named(name: str, env: dict[str, str]) -> AccountConfig:
    prefix = f"PACEKEEPER_ACCOUNT_{name.upper()}_"
    key = env.get(prefix + "API_KEY", "").strip()
    if not key:
        raise ConfigError(f"{prefix}API_KEY is not set (account {name} is in PACEKEEPER_ACCOUNTS)")
    secret = env.get(prefix + "API_SECRET", "").strip()
    ed25519 = env.get(prefix + "ED25519_PRIVATE_KEY", "").strip()
    if not secret and not ed25519:
        raise ConfigError(f"{prefix}API_SECRET or {prefix}ED25519_PRIVATE_KEY must be set")
    markets = tuple(m.strip().lower() for m in env.get(prefix + "MARKETS", "").split(",") if m)
    for market in markets:
        if market not in MARKETS:
            raise ConfigError(f"{prefix}MARKETS ({market}) must be spot, usdm or both")
    return AccountConfig(
        name=name,
        credentials=Credentials(
            SecretStr(key),
            SecretStr(secret) if secret else None,
            SecretStr(ed25519) if ed25519 else None,
        ),
        size_multiplier=_decimal(env, prefix + "SIZE_MULTIPLIER") or Decimal(1),
        max_notional=_decimal(env, prefix + "MAX_NOTIONAL"),
        markets=markets or MARKETS,
    )


def account_names(settings: Settings) -> list[str]:
    """The configured accounts' names, ``default`` first, without reading their keys."""
    names = [DEFAULT_ACCOUNT]
    for raw in settings.accounts:
        name = raw.strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def configured_accounts(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, AccountConfig]:
    """Every account by name, ``default`` first; ``environ`` replaces the process environment
    and ``.env`` (tests)."""
    accounts = {
        DEFAULT_ACCOUNT: AccountConfig(DEFAULT_ACCOUNT, Credentials.from_settings(settings))
    }
    env = _environ(settings, environ)
    for raw in settings.accounts:
        name = raw.strip().lower()
        if name == DEFAULT_ACCOUNT:
            continue
        if name == ALL_ACCOUNTS or not NAME_RE.match(name):
            raise ConfigError(
                f"PACEKEEPER_ACCOUNTS ({raw}) must be names of lower-case letters, digits and _ "
                "(at most 24, not 'all')"
            )
        accounts[name] = _named(name, env)
    return accounts


def scaled(signal: Signal, account: AccountConfig | None) -> Signal:
    """A signal's size for one account: ``quantity`` / ``quote_quantity`` times its size
    multiplier (percent sizes are already the account's own: a share of its balance)."""
    if account is None or account.size_multiplier == 1:
        return signal
    update = {
        name: getattr(signal, name) * account.size_multiplier
        for name in ("quantity", "quote_quantity")
        if getattr(signal, name) is not None
    }
    return signal.model_copy(update=update) if update else signal


def account_secrets(accounts: Mapping[str, AccountConfig]) -> list[str]:
    """Every key and secret the accounts hold (for the log redactor)."""
    out: list[str] = []
    for account in accounts.values():
        creds = account.credentials
        for value in (creds.api_key, creds.api_secret, creds.ed25519_private_key):
            if value is not None and value.get_secret_value():
                out.append(value.get_secret_value())
    return out
