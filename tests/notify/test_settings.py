"""PACEKEEPER_NOTIFY_URLS is a secret (its URLs carry tokens); PACEKEEPER_NOTIFY_EVENTS names
known notifications."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.logging import Redactor, settings_secrets
from app.notify.kinds import NOTIFY_KINDS

URLS = "tgram://123456789:AAbbCCddEEffGGhh/98765432, jsons://hook:pa55word-xyz@example.com/in"


def test_notify_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACEKEEPER_NOTIFY_URLS", URLS)
    monkeypatch.setenv("PACEKEEPER_NOTIFY_EVENTS", "exit, refused,failed")
    settings = Settings(_env_file=None)
    assert settings.notify_url_list() == [
        "tgram://123456789:AAbbCCddEEffGGhh/98765432",
        "jsons://hook:pa55word-xyz@example.com/in",
    ]
    assert settings.notify_events == ["refused", "failed", "exit"]
    monkeypatch.delenv("PACEKEEPER_NOTIFY_EVENTS")
    assert Settings(_env_file=None).notify_events == list(NOTIFY_KINDS)


def test_an_unknown_notification_event_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown notification event.*fills"):
        Settings(_env_file=None, notify_events="exit,fills")


def test_the_urls_and_their_tokens_never_show_in_a_repr_or_a_log_line() -> None:
    settings = Settings(_env_file=None, notify_urls=URLS)
    assert "AAbbCC" not in repr(settings) and "pa55word" not in repr(settings)
    redactor = Redactor(settings_secrets(settings))
    line = redactor.text(
        "POST https://api.telegram.org/bot123456789:AAbbCCddEEffGGhh/sendMessage failed; "
        "retrying jsons://hook:pa55word-xyz@example.com/in"
    )
    assert "AAbbCCddEEffGGhh" not in line and "pa55word-xyz" not in line
    assert "pa55word" not in redactor.text("hook:pa55word-xyz")
    assert redactor.text("example.com answered 502") == "example.com answered 502"  # a host
