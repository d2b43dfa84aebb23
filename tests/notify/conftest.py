"""Fixtures: a JSON webhook receiver over real HTTP, settings that notify it, and a database
(SQLite and PostgreSQL) with sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from tests.notify.receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


@pytest.fixture
def notify_settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"notify_urls": SecretStr(receiver.url())})


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    return session_factory
