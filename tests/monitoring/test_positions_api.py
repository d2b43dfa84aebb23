"""GET /api/positions values each open position: its live bracket's levels, what its stop
covers, and its unrealised PnL at the price the monitor read in its last cycle."""

from __future__ import annotations

from decimal import Decimal

import httpx

from app.main import create_app
from app.monitoring import marks
from paper.clock import ManualClock, wall_ms
from tests.conftest import TEST_ADMIN_TOKEN
from tests.monitoring.desk import Desk
from tests.support import serve

D = Decimal


def test_open_positions_show_their_bracket_and_their_value(desk: Desk) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(quantity="0.01", take_profit="70000", stop_loss="60000")
    assert desk.run(sid).status == "done"
    headers = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    with (
        serve(create_app(desk.ctx.settings)) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as api,
    ):
        desk.cycle()  # the protection pass reads the price and publishes it
        (row,) = api.get("/api/positions", params={"status": "open"}).json()["items"]
        held = D(row["held"])
        assert held > 0 and D(row["protected"]) == held
        assert (D(row["take_profit"]), D(row["stop_price"])) == (D(70000), D(60000))
        assert D(row["mark_price"]) == D(65000)
        entry = D(row["entry_avg_price"])
        assert D(row["unrealized_pnl"]) == (D(65000) - entry) * held

        desk.set_price("BTCUSDT", "66000")
        desk.cycle()
        (row,) = api.get("/api/positions", params={"status": "open"}).json()["items"]
        assert D(row["mark_price"]) == D(66000)
        assert D(row["unrealized_pnl"]) == (D(66000) - entry) * held > 0


def test_a_price_the_monitor_read_longer_ago_than_max_age_is_not_shown(desk: Desk) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(quantity="0.01", take_profit="70000", stop_loss="60000")
    assert desk.run(sid).status == "done"
    # The monitor stamps the prices it reads with its context's clock, set an hour behind
    # the wall here (a wall-time stamp would then look fresh for an hour), and its age is
    # read on the same clock, stepped past MAX_AGE instead of waited for.
    desk.ctx.clock = clock = ManualClock(start_ms=wall_ms() - 3_600_000)
    desk.cycle()
    redis, queue = desk.ctx.redis, desk.ctx.settings.queue_name

    clock.advance(marks.MAX_AGE - 1)
    assert marks.fetch(redis, queue, now=clock.now().timestamp()) == {("spot", "BTCUSDT"): D(65000)}
    clock.advance(2)
    assert marks.fetch(redis, queue, now=clock.now().timestamp()) == {}
