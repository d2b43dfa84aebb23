"""`.env.example` documents every setting (Pacekeeper's and the paper exchange's), with its
real default and placeholder secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from app.config import PLACEHOLDER_SECRETS, Settings
from paper.settings import PaperSettings

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(#\s*)?PACEKEEPER_([A-Z0-9_]+)=(.*)$")
# Both read PACEKEEPER_ variables from the same .env; a name both have is one variable.
CLASSES: tuple[type[BaseSettings], ...] = (Settings, PaperSettings)
FIELDS = {name: field for cls in CLASSES for name, field in cls.model_fields.items()}


def documented() -> dict[str, tuple[bool, str]]:
    """Setting name -> (active line?, value) for every PACEKEEPER_ line."""
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = LINE.match(line.strip())
        if match:
            out[match.group(2).lower()] = (match.group(1) is None, match.group(3).strip())
    return out


def test_every_setting_is_documented() -> None:
    missing = set(FIELDS) - set(documented())
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_every_documented_variable_is_a_setting() -> None:
    unknown = set(documented()) - set(FIELDS)
    assert not unknown, f".env.example documents settings that do not exist: {sorted(unknown)}"


def test_every_variable_has_a_comment_above_it() -> None:
    lines = [line.strip() for line in (ROOT / ".env.example").read_text().splitlines()]
    for index, line in enumerate(lines):
        if not LINE.match(line):
            continue
        block = []
        for previous in reversed(lines[:index]):
            if not previous:
                break
            block.append(previous)
        assert any(c.startswith("#") and not LINE.match(c) for c in block), line


def test_shown_defaults_are_the_real_defaults() -> None:
    for cls in CLASSES:
        defaults = cls(_env_file=None)
        for name, (active, value) in documented().items():
            if active or not value or value.startswith("<") or name not in cls.model_fields:
                continue
            field: dict[str, Any] = {name: value}
            shown = cls(_env_file=None, **field)
            assert getattr(shown, name) == getattr(defaults, name), f"PACEKEEPER_{name.upper()}"


def test_secrets_are_placeholders_never_usable_values() -> None:
    secret_fields = {
        name for name, field in FIELDS.items() if field.annotation in (SecretStr, SecretStr | None)
    }
    assert {
        "webhook_secret",
        "admin_token",
        "binance_api_secret",
        "paper_accounts",
    } <= secret_fields
    for name, (active, value) in documented().items():
        if name not in secret_fields:
            continue
        if active:
            # Copied as is, the receiver must refuse it.
            assert value.lower() in PLACEHOLDER_SECRETS, name
        else:
            assert value.startswith("<") and value.endswith(">"), name
