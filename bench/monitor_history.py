"""Monitor cycle time against history: 100 working TWAPs on top of 10,000 closed positions.

A monitor cycle must cost what is live (working orders, open positions waiting for a
bracket), not what ever was. This writes a history the way the execution layer leaves it
(per position: its entry signal ``done``, a filled MARKET entry with its fill, an OCO
bracket that ended, the events), optionally open positions that were never bracketed
(market entries without take-profit or stop-loss, never exited), then places the working
TWAPs on the paper exchange (``bench/monitor.py`` does the same without history) and
prints the time of a few cycles.

    .venv/bin/python bench/monitor_history.py                     # 10,000 closed, 100 algos
    .venv/bin/python bench/monitor_history.py --unbracketed 5770 --json-null
    .venv/bin/python bench/monitor_history.py --database-url postgresql+psycopg://postgres@127.0.0.1/db

``--json-null`` writes "no pending bracket" as JSON ``null``, as entries did before
migration 0003: with unbracketed open positions, that is the cycle issue 11 measured.
Bounded: three cycles per run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, insert, text

from app import migrate
from app.models import Event, Fill, Order, Position, Signal, new_id, utcnow
from bench.monitor import Bench, free_port, start_paper

BATCH = 2000
CYCLES = (("first", 60), ("quiet", 0), ("moved", 60))


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def write_history(bench: Bench, closed: int, unbracketed: int, json_null: bool) -> float:
    """Positions as execution leaves them; returns the seconds it took."""
    started = time.perf_counter()
    then = utcnow() - timedelta(days=30)
    total = closed + unbracketed
    with bench.engine.begin() as conn:
        next_order = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM orders")).scalar() or 0
        next_position = (
            conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM positions")).scalar() or 0
        )
    for start in range(0, total, BATCH):
        signals, positions, orders, fills, events = [], [], [], [], []
        for i in range(start, min(total, start + BATCH)):
            is_open = i >= closed
            sid = new_id()
            next_position += 1
            entry_id, bracket_id = next_order + 1, next_order + 2
            next_order += 2 if not is_open else 1
            signals.append(
                {
                    "id": sid, "idempotency_key": f"hist:{sid}",
                    "body_digest": hashlib.sha256(sid.encode()).hexdigest(),
                    "action": "entry", "market": "spot", "symbol": "BTCUSDT", "side": "buy",
                    "strategy": "history", "payload": {"action": "entry"}, "status": "done",
                    "received_at": then, "updated_at": then, "attempts": 1,
                }
            )  # fmt: skip
            positions.append(
                {
                    "id": next_position, "strategy": "history", "market": "spot",
                    "symbol": "BTCUSDT", "side": "BUY",
                    "status": "open" if is_open else "closed",
                    "quantity": Decimal("0.001") if is_open else Decimal(0),
                    "entry_avg_price": Decimal("60000"), "entry_cost": Decimal("60"),
                    "exit_quantity": Decimal(0) if is_open else Decimal("0.001"),
                    "exit_proceeds": Decimal(0) if is_open else Decimal("61"),
                    "pending_bracket": None, "bracket_gen": 0 if is_open else 1,
                    "opened_by": sid, "opened_at": then, "updated_at": then,
                    "closed_at": None if is_open else then,
                }
            )  # fmt: skip
            orders.append(
                {
                    "id": entry_id, "signal_id": sid, "position_id": next_position,
                    "leg": "entry", "kind": "market", "market": "spot", "symbol": "BTCUSDT",
                    "side": "BUY", "client_id": f"hist-{sid}-e", "venue_id": entry_id,
                    "status": "filled", "quantity": Decimal("0.001"),
                    "executed_qty": Decimal("0.001"), "executed_amt": Decimal("60"),
                    "attempts": 1, "created_at": then, "updated_at": then,
                }
            )  # fmt: skip
            fills.append(
                {
                    "order_id": entry_id, "venue_fill_id": str(entry_id),
                    "price": Decimal("60000"), "qty": Decimal("0.001"),
                    "quote_qty": Decimal("60"), "fee": Decimal(0), "time": then,
                    "created_at": then,
                }
            )  # fmt: skip
            if not is_open:
                orders.append(
                    {
                        "id": bracket_id, "signal_id": sid, "position_id": next_position,
                        "leg": "bracket", "kind": "oco", "market": "spot",
                        "symbol": "BTCUSDT", "side": "SELL", "client_id": f"hist-{sid}-b",
                        "venue_id": bracket_id, "status": "filled",
                        "quantity": Decimal("0.001"), "executed_qty": Decimal("0.001"),
                        "executed_amt": Decimal("61"), "attempts": 1, "created_at": then,
                        "updated_at": then,
                    }
                )  # fmt: skip
            for message in ("received", "received -> queued", "processing -> done"):
                events.append(
                    {"signal_id": sid, "order_id": None, "kind": "state",
                     "message": message, "data": None, "created_at": then}
                )  # fmt: skip
        with bench.engine.begin() as conn:
            conn.execute(insert(_table(Signal)), signals)
            conn.execute(insert(_table(Position)), positions)
            conn.execute(insert(_table(Order)), orders)
            conn.execute(insert(_table(Fill)), fills)
            conn.execute(insert(_table(Event)), events)
    if json_null:
        # What entries wrote before migration 0003: JSON null, not SQL NULL.
        with bench.engine.begin() as conn:
            conn.execute(text("UPDATE positions SET pending_bracket = 'null'"))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", type=int, default=100, help="working TWAPs")
    parser.add_argument("--closed", type=int, default=10_000, help="closed positions")
    parser.add_argument("--unbracketed", type=int, default=0, help="open positions never bracketed")
    parser.add_argument("--json-null", action="store_true", help="history as before 0003")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval, s")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--redis", help="Redis URL for the lock and rate store (optional)")
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
        migrate.upgrade(database_url)
        port = free_port()
        paper = start_paper(port, workdir)
        bench = Bench(args, f"http://127.0.0.1:{port}", database_url)
        try:
            bench.setup(args.algos)  # empties the tables, places the working TWAPs
            seconds = write_history(bench, args.closed, args.unbracketed, args.json_null)
            bench.latency(args.latency_ms)
            print(
                f"database {database_url.split('://')[0]}: {args.algos} working TWAPs,"
                f" {args.closed} closed positions, {args.unbracketed} open never bracketed"
                f"{' (JSON null, as before migration 0003)' if args.json_null else ''};"
                f" history written in {seconds:.1f} s"
            )
            for name, advance in CYCLES:
                bench.advance(advance)
                report, cpu = bench.cycle()
                print(
                    f"cycle {name:<6} {report.duration_s:>7.3f} s  cpu {cpu:5.2f} s"
                    f"  algos {report.algos_checked}  fills {report.fills_recorded}"
                    f"  brackets checked {report.brackets_checked}  errors {report.errors}"
                )
        finally:
            bench.close()
            paper.terminate()
            paper.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
