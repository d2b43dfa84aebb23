"""The README's templates are valid signals and its names are the ones the code uses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import Settings
from app.devstack import example_signal
from app.healthcheck import MONITOR_HEARTBEAT_KEY
from app.sender import SIGNATURE_HEADER, TIMESTAMP_HEADER
from app.signals import schemas

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

# What TradingView might put in the placeholders.
PLACEHOLDERS = {
    "ticker": "BTCUSDT",
    "strategy.order.id": "Long",
    "strategy.order.action": "buy",
    "strategy.order.contracts": "0.05",
    "timenow": "2026-11-21T10:00:00Z",
    "close": "64000",
    "interval": "15",
    "plot_0": "70000",
    "plot_1": "60000",
    "plot_2": "72000",
    "plot_3": "74000",
}


def tradingview_templates() -> list[str]:
    section = README.split("### From TradingView", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```json\n(.*?)```", section, re.DOTALL)


def fill(template: str) -> dict[str, object]:
    def value(match: re.Match[str]) -> str:
        return PLACEHOLDERS[match.group(1)]

    filled = re.sub(r"\{\{([a-z_0-9.]+)\}\}", value, template)
    body: dict[str, object] = json.loads(filled)
    return body


def test_there_are_tradingview_templates_with_a_secret_placeholder() -> None:
    templates = tradingview_templates()
    assert len(templates) >= 2
    for template in templates:
        assert fill(template)["secret"] == "YOUR_PACEKEEPER_WEBHOOK_SECRET"


@pytest.mark.parametrize("index", range(len(tradingview_templates())))
def test_tradingview_templates_are_valid_signals(index: int) -> None:
    body = fill(tradingview_templates()[index])
    body.pop("secret")
    signal = schemas.parse_signal(
        body, now=datetime(2026, 11, 21, 10, tzinfo=UTC), twap_min_duration=300
    )
    assert signal.symbol == "BTCUSDT"


def test_the_dev_example_signal_is_valid() -> None:
    schemas.parse_signal(example_signal(), now=datetime.now(UTC))


def test_names_in_the_readme_are_the_names_in_the_code() -> None:
    assert TIMESTAMP_HEADER in README
    assert SIGNATURE_HEADER in README
    assert MONITOR_HEARTBEAT_KEY in README
    for command in ("make dev", "make test"):
        assert command in README
        target = command.split()[1]
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_configuration_table_names_real_settings() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([A-Z0-9_]+)`(?: / `([A-Z0-9_]+)`)?", section, re.MULTILINE)
    found = {name.lower() for pair in names for name in pair if name}
    assert len(found) > 20
    assert found <= set(Settings.model_fields), found - set(Settings.model_fields)


def test_the_ladder_template_places_three_targets_and_a_stop() -> None:
    ladder, _ = [t for t in tradingview_templates() if '"fraction"' in t]
    body = fill(ladder)
    body.pop("secret")
    signal = schemas.parse_signal(body, now=datetime(2026, 11, 21, 10, tzinfo=UTC))
    assert signal.take_profit is not None and len(signal.take_profit.targets or []) == 3
    assert signal.stop_loss is not None


def test_the_breakeven_template_moves_the_stop_after_the_first_target() -> None:
    (template,) = [t for t in tradingview_templates() if "breakeven_after" in t]
    body = fill(template)
    body.pop("secret")
    signal = schemas.parse_signal(body, now=datetime(2026, 11, 21, 10, tzinfo=UTC))
    assert signal.stop_loss is not None and signal.stop_loss.breakeven_after == 1


def test_the_trailing_template_trails_on_usdm() -> None:
    (template,) = [t for t in tradingview_templates() if '"trailing"' in t]
    body = fill(template)
    body.pop("secret")
    signal = schemas.parse_signal(body, now=datetime(2026, 11, 21, 10, tzinfo=UTC))
    assert signal.stop_loss is not None and signal.stop_loss.trailing is not None
    assert signal.market == "usdm" and signal.stop_loss.trailing.activation_price == 70000
