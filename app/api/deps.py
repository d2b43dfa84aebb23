"""Dependencies at the edge: the settings, a database session, Redis, and the admin guard."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis
from sqlalchemy.orm import Session

from app.config import MIN_SECRET_LENGTH, PLACEHOLDER_SECRETS, Settings
from app.errors import Unauthorized

log = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; the route commits what it changes."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for a request that only reads (the admin API's GETs, the dashboard): on
    SQLite it reads a snapshot without taking or waiting for the write lock the intake and
    the workers take in turn, so a busy stack never answers a read with "database is locked";
    it cannot write (``query_only``)."""
    session: Session = request.app.state.read_sessions()
    try:
        yield session
    finally:
        session.close()


def get_redis(request: Request) -> Redis | None:
    redis: Redis | None = getattr(request.app.state, "redis", None)
    return redis


def admin_token_usable(settings: Settings) -> bool:
    """False for an empty, placeholder or short token: then the admin API refuses everyone."""
    token = settings.admin_token.get_secret_value()
    return token.strip().lower() not in PLACEHOLDER_SECRETS and len(token) >= MIN_SECRET_LENGTH


def _digest(value: str) -> bytes:
    # Equal-length digests, so compare_digest's time does not depend on the token's length.
    return hashlib.sha256(value.encode()).digest()


# Declares the bearer scheme in the OpenAPI document; the header itself is checked below, so
# that every failure (missing, another scheme, a wrong token) is the same 401.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="`Authorization: Bearer <PACEKEEPER_ADMIN_TOKEN>`",
)


def require_admin(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """``Authorization: Bearer <PACEKEEPER_ADMIN_TOKEN>``, compared in constant time."""
    settings = get_settings(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value()
    valid = hmac.compare_digest(_digest(given.strip()), _digest(expected))
    if not admin_token_usable(settings):
        raise Unauthorized("admin API disabled: no usable PACEKEEPER_ADMIN_TOKEN")
    if scheme.lower() != "bearer" or not valid:
        log.warning(
            "admin API refused: bad or missing bearer token", extra={"path": request.url.path}
        )
        raise Unauthorized("bad or missing admin bearer token")


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
RedisDep = Annotated[Redis | None, Depends(get_redis)]
Admin = Depends(require_admin)
