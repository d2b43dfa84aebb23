"""`pacekeeper status` and the dashboard page."""

from __future__ import annotations

import argparse
import io
import json
import re
from contextlib import redirect_stdout
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.cli import build_parser
from app.config import Settings
from app.models import Fill, Order, utcnow
from app.monitoring import verdicts
from app.monitoring.pace import Cadence, PaceState, PaceVerdict
from app.status import status_main
from tests.api.conftest import add_order, add_signal

D = Decimal


def run_status(settings: Settings, *argv: str) -> str:
    args = build_parser().parse_args(["status", *argv])
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert status_main(args, settings) == 0
    return buffer.getvalue()


def add_fill(session: Session, order: Order, qty: str, at: datetime) -> None:
    session.add(Fill(order_id=order.id, venue_fill_id=f"child-{at.timestamp()}", price=D(1),
                     qty=D(qty), quote_qty=D(qty), time=at))  # fmt: skip


def seed_algos(sessions: sessionmaker[Session]) -> int:
    """Two working algos (and a filled one); returns the BTC TWAP's order id."""
    started = utcnow() - timedelta(seconds=600)
    with sessions() as session:
        signal = add_signal(session, status="working", strategy="breakout")
        btc = add_order(
            session,
            signal_id=signal.id,
            symbol="BTCUSDT",
            quantity=D("2"),
            executed_qty=D("0.2"),
            duration=1200,
            book_time=started,
            last_fill_at=utcnow(),
        )
        for after in (30, 90):  # two children of a minute's worth: far behind at 600 s
            add_fill(session, btc, "0.1", started + timedelta(seconds=after))
        eth = add_order(
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
        add_fill(session, eth, "5", started + timedelta(seconds=500))
        add_order(session, symbol="SOLUSDT", status="filled")  # done: not shown
        session.commit()
        return btc.id


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
    assert "10%" in btc and "50%" in btc  # fill, schedule
    # Elapsed: 600 s when seeded, plus however long this loaded machine took since.
    assert re.search(r"\b10m0[0-9]s\b", btc), btc
    assert "behind_schedule" in btc
    assert "database" in btc  # judged here: the monitor has published no verdict for it
    eth = next(line for line in lines if "ETHUSDT" in line)
    assert "usdm vp" in eth and "complete" in eth
    assert "SOLUSDT" not in output


def test_status_shows_the_monitors_own_verdict(
    api_settings: Settings, sessions: sessionmaker[Session], rconn: redis.Redis
) -> None:
    order_id = seed_algos(sessions)
    as_of = utcnow().replace(microsecond=0) - timedelta(seconds=2)
    seen = PaceVerdict(
        PaceState.ON_SCHEDULE, D("0.5"), D("0.3"), D(598), "on pace after 598 s",
        required=D("0.2"), cadence=Cadence(D(60), D("0.05"), True), children=9,
    )  # fmt: skip
    published = {order_id: verdicts.Published(seen, as_of)}
    verdicts.publish(rconn, api_settings.queue_name, published, expire=60)

    btc = next(line for line in run_status(api_settings).splitlines() if "BTCUSDT" in line)
    assert "on_schedule: on pace after 598 s" in btc and "30%" in btc
    assert f"{as_of:%H:%M:%S} monitor" in btc
    data = json.loads(run_status(api_settings, "--json"))
    [algo] = [a for a in data["algos"] if a["symbol"] == "BTCUSDT"]
    assert (algo["source"], algo["as_of"], algo["children"]) == ("monitor", as_of.isoformat(), 9)


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
    for used in ("/algos", "/signals?", "recent_hours", "/halt", "/resume", "/cancel"):
        assert used in page, used
    assert "sessionStorage" in page and "Bearer " in page
    # Values from the API are written as text, never parsed as HTML.
    assert "innerHTML" not in page
    assert "<script src=" not in page  # no third-party code
