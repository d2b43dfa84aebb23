"""The receiver's operator surface: health, metrics, the admin API and the dashboard.

``install(app)`` adds them to the app ``app.main.create_app`` builds; they use the resources
its lifespan opens (``app.state.engine``, ``session_factory``, ``redis``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.accounts import account_names
from app.api import admin, health, metrics, web
from app.api.deps import admin_token_usable
from app.metrics import DatabaseCollector, RedisCollector, WebhookMetrics

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    """Add /health, /metrics, /api and the dashboard to ``app``."""
    settings = app.state.settings
    registry = CollectorRegistry(auto_describe=False)
    webhook_metrics = WebhookMetrics(registry)
    registry.register(
        DatabaseCollector(
            lambda: getattr(app.state, "read_engine", None) or getattr(app.state, "engine", None),
            account_names(settings),
        )
    )
    registry.register(RedisCollector(lambda: getattr(app.state, "redis", None), settings))
    app.state.metrics_registry = registry
    app.add_middleware(metrics.WebhookTimer, metrics=webhook_metrics)
    if not admin_token_usable(settings):
        log.warning(
            "admin API disabled: PACEKEEPER_ADMIN_TOKEN is empty, a placeholder or too short"
        )
    for module in (health, metrics, admin, web):
        app.include_router(module.router)
