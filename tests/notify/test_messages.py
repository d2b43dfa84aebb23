"""Messages are short and say what happened; the README's example is what is really sent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from app.notify.messages import Facts, render

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
WHEN = datetime(2026, 12, 6, 10, tzinfo=UTC)


def test_the_readme_shows_the_refusal_notification_as_it_is_rendered() -> None:
    section = README.split("What a refusal after `202` looks like", 1)[1]
    shown = json.loads(re.findall(r"```json\n(.*?)```", section, re.DOTALL)[0])
    message = render(
        Facts(
            kind="refused",
            message="trading is halted: maintenance",
            created_at=WHEN,
            signal_ref="tv-42-BTCUSDT-entry",
            action="entry",
            strategy="breakout-v2",
            symbol="BTCUSDT",
            side="buy",
            market="spot",
        )
    )
    assert (shown["title"], shown["message"], shown["type"]) == (
        message.title,
        message.body,
        message.level,
    )


def test_a_pace_cancel_says_how_much_was_left_unfilled() -> None:
    facts = Facts(
        kind="pace_cancel",
        message="cancelled by the monitor (stalled): 0.12 of 0.3 filled at avg 65010",
        created_at=WHEN,
        data={"executed_qty": "0.12", "total": "0.3", "cause": "pace"},
        symbol="BTCUSDT",
        side="BUY",
        order_kind="twap",
    )
    message = render(facts)
    assert message.title == "[pacekeeper] Pace cancel: TWAP BUY BTCUSDT"
    assert message.body == (
        "cancelled by the monitor (stalled): 0.12 of 0.3 filled at avg 65010"
        "; the remaining 0.18 was cancelled\n2026-12-06 10:00:00 UTC"
    )


def test_an_exit_title_carries_the_signed_realised_pnl() -> None:
    facts = Facts(
        kind="exit",
        message="oco exit: 0.5 at 60000; realised PnL -2500; position closed",
        created_at=WHEN,
        data={"executed_qty": "0.5", "realized_pnl": "-2500"},
        symbol="BTCUSDT",
        side="SELL",
    )
    assert render(facts).title == "[pacekeeper] Exit filled: SELL BTCUSDT 0.5, realised PnL -2500"


def test_the_title_names_the_account_or_accounts_a_message_is_about() -> None:
    def title(account: str | None) -> str:
        facts = Facts(kind="refused", message="x", created_at=WHEN, action="entry",
                      symbol="ETHUSDT", side="buy", account=account)  # fmt: skip
        return render(facts).title

    assert title(None) == "[pacekeeper] Signal refused: entry BUY ETHUSDT"
    assert title("alt") == "[pacekeeper] Signal refused: entry BUY ETHUSDT (account alt)"
    assert title("alt, third").endswith("(accounts alt, third)")
    assert title("all").endswith("(every account)")
