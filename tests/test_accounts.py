"""Named accounts from the environment: `default` is the single-key settings, every other
account its own variables, and a bad one is a ConfigError naming the variable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.accounts import account_secrets, configured_accounts
from app.config import ConfigError, Settings
from app.logging import settings_secrets
from paper.settings import PAPER_API_KEY

ALT = {
    "PACEKEEPER_ACCOUNT_ALT_API_KEY": "alt-key",
    "PACEKEEPER_ACCOUNT_ALT_API_SECRET": "alt-secret-value",
}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_single_key_deployment_is_the_default_account() -> None:
    accounts = configured_accounts(settings(), environ={})
    assert list(accounts) == ["default"]
    assert accounts["default"].credentials.api_key.get_secret_value() == PAPER_API_KEY
    assert accounts["default"].size_multiplier == Decimal(1)


def test_named_accounts_read_their_own_variables() -> None:
    env = {
        **ALT,
        "PACEKEEPER_ACCOUNT_MAIN_API_KEY": "main-key",
        "PACEKEEPER_ACCOUNT_MAIN_ED25519_PRIVATE_KEY": "pem",
        "PACEKEEPER_ACCOUNT_ALT_SIZE_MULTIPLIER": "0.5",
        "PACEKEEPER_ACCOUNT_ALT_MAX_NOTIONAL": "2500",
        "PACEKEEPER_ACCOUNT_ALT_MARKETS": "usdm",
    }
    accounts = configured_accounts(settings(accounts="main, alt"), environ=env)
    assert list(accounts) == ["default", "main", "alt"]
    alt = accounts["alt"]
    assert (alt.size_multiplier, alt.max_notional, alt.markets) == (
        Decimal("0.5"),
        Decimal("2500"),
        ("usdm",),
    )
    assert accounts["main"].credentials.ed25519_private_key is not None
    assert accounts["main"].markets == ("spot", "usdm")
    assert "alt-secret-value" not in repr(accounts)


@pytest.mark.parametrize(
    ("names", "env", "variable"),
    [
        ("alt", {}, "PACEKEEPER_ACCOUNT_ALT_API_KEY"),
        ("alt", {"PACEKEEPER_ACCOUNT_ALT_API_KEY": "k"}, "PACEKEEPER_ACCOUNT_ALT_API_SECRET"),
        ("alt", {**ALT, "PACEKEEPER_ACCOUNT_ALT_SIZE_MULTIPLIER": "x"}, "_ALT_SIZE_MULTIPLIER"),
        ("alt", {**ALT, "PACEKEEPER_ACCOUNT_ALT_MAX_NOTIONAL": "-1"}, "_ALT_MAX_NOTIONAL"),
        ("alt", {**ALT, "PACEKEEPER_ACCOUNT_ALT_MARKETS": "coinm"}, "_ALT_MARKETS"),
        ("all", {}, "PACEKEEPER_ACCOUNTS"),
        ("Bad-Name", {}, "PACEKEEPER_ACCOUNTS"),
    ],
)
def test_a_bad_account_setting_names_the_variable(
    names: str, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        configured_accounts(settings(accounts=names), environ=env)


def test_account_secrets_are_redacted_from_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ALT.items():
        monkeypatch.setenv(name, value)
    configured = settings(accounts="alt")
    assert "alt-secret-value" in account_secrets(configured_accounts(configured))
    assert "alt-secret-value" in settings_secrets(configured)
