"""The paper exchange's own settings: the variables Pacekeeper's side reads too, one default
for each, and a package that needs nothing from ``app``."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from paper.settings import PAPER_API_KEY, PaperSettings

PACKAGE = Path(__file__).resolve().parents[2] / "paper"


def test_the_paper_package_imports_nothing_from_app() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert not found


def test_it_reads_the_pacekeeper_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACEKEEPER_PAPER_SEED", "3")
    monkeypatch.setenv("PACEKEEPER_PAPER_VOLATILITY", "0")
    monkeypatch.setenv("PACEKEEPER_BINANCE_API_KEY", "the-clients-key")
    monkeypatch.setenv("PACEKEEPER_TWAP_MIN_DURATION", "10")
    settings = PaperSettings(_env_file=None)
    assert settings.paper_seed == 3
    assert settings.paper_volatility == Decimal(0)
    assert settings.binance_api_key.get_secret_value() == "the-clients-key"
    assert settings.twap_min_duration == 10


def test_a_setting_both_sides_read_has_one_default() -> None:
    client, exchange = Settings(_env_file=None), PaperSettings(_env_file=None)
    shared = set(Settings.model_fields) & set(PaperSettings.model_fields)
    # the key it accepts, where it listens and Binance's algo limits
    assert {"binance_api_key", "paper_port", "twap_min_duration", "max_open_vp"} <= shared
    for name in shared:
        assert getattr(client, name) == getattr(exchange, name), name
    assert exchange.binance_api_key.get_secret_value() == PAPER_API_KEY


def test_a_twap_minimum_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="twap_min_duration must not exceed"):
        PaperSettings(_env_file=None, twap_min_duration=600, twap_max_duration=300)
