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
from app.execution.quality import STEPS, measure, record_arrival, record_quality
from app.models import Event, Fill, Order, utcnow
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


def seed_quality(sessions: sessionmaker[Session]) -> tuple[Order, Order]:
    """A working BTC TWAP bought in two fills against an arrival price of 65000, and an ETH TWAP
    sold an hour ago whose quality the monitor recorded with the window's VWAP."""
    received = utcnow() - timedelta(seconds=600)
    with sessions() as session:
        signal = add_signal(session, status="working", received_at=received,
                            enqueued_at=received + timedelta(seconds=0.25))  # fmt: skip
        btc = add_order(session, signal_id=signal.id, quantity=D("0.3"), executed_qty=D("0.2"))
        session.add(Event(signal_id=signal.id, order_id=btc.id, kind="sent",
                          created_at=received + timedelta(seconds=1)))  # fmt: skip
        record_arrival(session, signal.id, D("65000"), "last price")
        for after, price, fee, asset in ((30, "65010", "6.501", "USDT"),
                                         (90, "65030", "0.0001", "BTC")):  # fmt: skip
            session.add(Fill(order_id=btc.id, venue_fill_id=f"btc-{after}", price=D(price),
                             qty=D("0.1"), quote_qty=D(price) / 10, fee=D(fee), fee_asset=asset,
                             time=received + timedelta(seconds=after)))  # fmt: skip

        sold = add_signal(session, status="done", symbol="ETHUSDT", side="sell",
                          received_at=received - timedelta(hours=1))  # fmt: skip
        eth = add_order(session, signal_id=sold.id, symbol="ETHUSDT", side="SELL",
                        status="filled", quantity=D(1), executed_qty=D(1),
                        updated_at=utcnow() - timedelta(hours=1))  # fmt: skip
        record_arrival(session, sold.id, D("3200"), "last price")
        session.add(Fill(order_id=eth.id, venue_fill_id="eth-1", price=D(3190), qty=D(1),
                         quote_qty=D(3190), fee=D("3.19"), fee_asset="USDT",
                         time=sold.received_at + timedelta(seconds=5)))  # fmt: skip
        session.flush()
        record_quality(session, sold.id, lambda *window: D("3195"))
        session.commit()
        return btc, eth


def quality_lines(output: str) -> dict[str, list[Decimal | None]]:
    """The execution-quality table of ``status``, by order id: each line's figures ("-" is
    None), as numbers (the databases keep their own scale)."""
    lines = output.split("Execution quality", 1)[1].splitlines()[1:]
    assert lines[0].split("  ")[0:2] == ["ORDER", "ARRIVAL"]
    rows = [line.split() for line in lines[1:]]
    return {row[0]: [None if cell == "-" else D(cell) for cell in row[1:]] for row in rows}


def test_status_prints_each_algos_execution_quality_as_stored(
    api_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    btc, eth = seed_quality(sessions)

    working = quality_lines(run_status(api_settings))
    assert list(working) == [str(btc.id)]  # the filled ETH algo is not working
    # avg (6501 + 6503) / 0.2 = 65020: 3.08 bps above arrival; fees 6.501 USDT and
    # 0.0001 BTC at its fill's 65030; no VWAP until the execution has ended.
    assert working[str(btc.id)] == [
        D(65000), D(65020), D("0.2"), D("3.08"), None, None, D("13.004"), D("0.25"), D(1),
        D(30), D(90),
    ]  # fmt: skip

    both = quality_lines(run_status(api_settings, "--recent", "24"))
    # Sold at 3190: 31.25 bps below arrival 3200, 15.65 bps below the window's VWAP 3195.
    assert both[str(eth.id)][:7] == [
        D(3200), D(3190), D(1), D("31.25"), D("15.65"), D(3195), D("3.19"),
    ]  # fmt: skip
    assert both[str(btc.id)] == working[str(btc.id)]

    data = json.loads(run_status(api_settings, "--json", "--recent", "24"))
    with sessions() as session:
        for algo in data["algos"]:
            stored = measure(session, algo["signal_id"])
            assert stored is not None and algo["quality"] == stored.as_json()
            printed = both[str(algo["order_id"])]
            delays = [stored.delays[step] for step in STEPS]
            assert printed[-len(STEPS) :] == [None if d is None else D(str(d)) for d in delays]


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
