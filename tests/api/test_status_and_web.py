"""`pacekeeper status` and the dashboard page."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.cli import build_parser
from app.config import Settings
from app.models import utcnow
from app.status import status_main
from tests.api.conftest import add_order, add_signal

D = Decimal


def run_status(settings: Settings, *argv: str) -> str:
    args = build_parser().parse_args(["status", *argv])
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert status_main(args, settings) == 0
    return buffer.getvalue()


def seed_algos(sessions: sessionmaker[Session]) -> None:
    started = utcnow() - timedelta(seconds=600)
    with sessions() as session:
        signal = add_signal(session, status="working", strategy="breakout")
        add_order(
            session,
            signal_id=signal.id,
            symbol="BTCUSDT",
            quantity=D("2"),
            executed_qty=D("0.2"),
            duration=1200,
            book_time=started,
            last_fill_at=utcnow(),
        )
        add_order(
            session,
            kind="vp",
            market="usdm",
            symbol="ETHUSDT",
            side="SELL",
            quantity=D("5"),
            executed_qty=D("5"),
            duration=None,
            book_time=started,
        )
        add_order(session, symbol="SOLUSDT", status="filled")  # done: not shown
        session.commit()


def test_status_prints_each_working_algo_with_its_pace(
    api_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    assert run_status(api_settings).strip() == "no working algos"
    seed_algos(sessions)
    output = run_status(api_settings)
    lines = output.splitlines()
    assert lines[0].split()[:5] == ["ORDER", "SYMBOL", "SIDE", "KIND", "EXECUTED/TOTAL"]
    btc = next(line for line in lines if "BTCUSDT" in line)
    assert "BUY" in btc and "spot twap" in btc and "0.2/2" in btc
    assert "10%" in btc and "50%" in btc and "10m00s" in btc  # fill, schedule, elapsed
    assert "behind_schedule" in btc
    eth = next(line for line in lines if "ETHUSDT" in line)
    assert "usdm vp" in eth and "complete" in eth
    assert "SOLUSDT" not in output


def test_status_as_json_and_with_a_halt(
    api_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    seed_algos(sessions)
    with sessions() as session:
        controls.halt(session, reason="maintenance", by="test")
        session.commit()
    assert run_status(api_settings).startswith("HALTED: maintenance")
    data = json.loads(run_status(api_settings, "--json"))
    assert data["halted"].startswith("maintenance")
    [btc] = [a for a in data["algos"] if a["symbol"] == "BTCUSDT"]
    assert btc["state"] == "behind_schedule" and btc["strategy"] == "breakout"
    assert D(btc["fill_fraction"]) == D("0.1") and btc["executed_qty"] == "0.2"


def test_the_cli_routes_status_to_this_module() -> None:
    args = build_parser().parse_args(["status", "--json"])
    assert isinstance(args, argparse.Namespace) and args.json is True
    assert args.func.__name__ == "_status"


def test_the_dashboard_is_served_without_a_token_and_reads_the_admin_api(api: TestClient) -> None:
    for path in ("/", "/ui"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page = response.text
    for used in ("/algos", "/signals?limit=", "/halt", "/resume", "/cancel"):
        assert used in page, used
    assert "sessionStorage" in page and "Bearer " in page
    # Values from the API are written as text, never parsed as HTML.
    assert "innerHTML" not in page
    assert "<script src=" not in page  # no third-party code
