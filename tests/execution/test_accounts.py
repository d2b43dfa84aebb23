"""One signal, several accounts: a child signal per account, each executed exactly once on
its own key (the paper exchange's ledger says which key took each order), each refused or
failing alone; the parent's status sums the children up."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select, update

from app import controls
from app.accounts import configured_accounts
from app.config import Settings
from app.db import session_scope
from app.exchange.auth import Credentials
from app.exchange.client import BinanceClient
from app.exchange.ids import client_order_id
from app.exchange.ratelimit import RateGovernor
from app.execution.context import ExecContext
from app.keyguard import check_keys
from app.models import Order, Position, utcnow
from app.models import Signal as SignalRow
from app.monitoring.service import run_cycle
from app.notify.service import Cooldowns, deliver
from app.queue import enqueue_signals, make_queue
from app.signals.schemas import InvalidSignal
from app.signals.service import prepare, record
from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PAPER_API_KEY, PaperSettings
from tests.execution.conftest import (
    MakeContext,
    Paper,
    RequestLog,
    ledger,
    run,
    signal_row,
    work_once,
)
from tests.notify.receiver import receiving
from tests.support import serve

D = Decimal
KEYS = {"alt": ("alt-key", "alt-secret"), "third": ("third-key", "third-secret")}
ENV = {
    f"PACEKEEPER_ACCOUNT_{name.upper()}_{part}": value
    for name, (key, secret) in KEYS.items()
    for part, value in (("API_KEY", key), ("API_SECRET", secret))
}
KEY_OF = {"default": PAPER_API_KEY, **{name: key for name, (key, _) in KEYS.items()}}
BRACKETED = {
    "quantity": "0.01",
    "take_profit": {"price": "70000"},
    "stop_loss": {"stop_price": "60000", "limit_price": "59900"},
}


class KeyedLog(RequestLog):
    """The request log, noting also which key each order placement was answered to, when."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.answered: list[tuple[float, str, bool]] = []  # time, key, a slow one held

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"x-mbx-apikey", b"").decode()
        placing = scope["type"] == "http" and scope["method"] == "POST"
        placing = placing and scope["path"] == "/api/v3/order"

        async def noted(message: Any) -> None:
            if placing and message["type"] == "http.response.start":
                faults = self.app.state.paper.faults
                held = any(rule["holding"] for rule in faults.views())
                self.answered.append((time.time(), key, held))
            await send(message)

        await super().__call__(scope, receive, noted)


@pytest.fixture(scope="module")
def paper() -> Iterator[Paper]:
    """A paper exchange with three accounts: the configured key's, alt's and third's."""
    clock = ManualClock()
    accounts = ",".join(f"{key}:{secret}" for key, secret in KEYS.values())
    settings = PaperSettings(
        _env_file=None,
        twap_min_duration=10,
        paper_volatility=D(0),
        paper_seed=11,
        paper_accounts=SecretStr(accounts),
        paper_algo_cadence="fine",
    )
    app = create_app(settings, clock=clock)
    log = KeyedLog(app)
    with serve(log) as server:
        yield Paper(server, app, log, clock)


@pytest.fixture
def accounts_ctx(make_ctx: MakeContext, control: httpx.Client) -> Iterator[ExecContext]:
    """The default account's context, knowing alt's and third's keys too."""
    control.post("/price", json={"symbol": "BTCUSDT", "price": "65000"}).raise_for_status()
    ctx = make_ctx(accounts=["alt", "third"])
    configs = configured_accounts(ctx.settings, environ=ENV)
    named = {
        name: _client(ctx.settings, config.credentials)
        for name, config in configs.items()
        if name != "default"
    }
    yield replace(ctx, clients={"default": ctx.client, **named}, accounts=configs)
    for client in named.values():
        client.close()


def _client(settings: Settings, credentials: Credentials) -> BinanceClient:
    http = httpx.Client(timeout=settings.http_timeout)
    governor = RateGovernor(max_wait=settings.rate_limit_max_wait)
    return BinanceClient(http, settings, credentials=credentials, governor=governor)


def submit(ctx: ExecContext, **fields: Any) -> str:
    raw = {"action": "entry", "symbol": "BTCUSDT", "side": "buy", "id": uuid.uuid4().hex, **fields}
    prepared = prepare(
        raw,
        now=utcnow(),
        dedupe_window=60,
        twap_min_duration=ctx.settings.twap_min_duration,
        twap_max_duration=ctx.settings.twap_max_duration,
        accounts={name: config.markets for name, config in ctx.accounts.items()},
    )
    return record(ctx.sessions.kw["bind"], prepared, now=utcnow()).signal_id


def children(ctx: ExecContext, parent_id: str) -> dict[str, str]:
    with session_scope(ctx.sessions) as session:
        rows = session.scalars(select(SignalRow).where(SignalRow.parent_id == parent_id))
        return {row.account: row.id for row in rows}


def run_all(ctx: ExecContext, parent_id: str) -> dict[str, str]:
    """The parent's job, then each child's job (as separate workers would run them)."""
    run(ctx, parent_id)
    kids = children(ctx, parent_id)
    for child_id in kids.values():
        run(ctx, child_id)
    return kids


def by_key(control: httpx.Client) -> Counter[tuple[str, str]]:
    return Counter((entry["key"], entry["kind"]) for entry in ledger(control))


def test_one_signal_places_one_order_set_per_account_exactly_once(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    parent = submit(accounts_ctx, accounts="all", **BRACKETED)
    assert run(accounts_ctx, parent).status == "working"
    kids = run_all(accounts_ctx, parent)
    assert set(kids) == {"default", "alt", "third"}
    expected = Counter({(KEY_OF[a], kind) for a in kids for kind in ("spot_order", "oco")})
    assert by_key(control) == expected
    # Every job again, the children handed back as if their workers had died mid-run (the
    # sweeper's re-run): each finds its orders by client id, nothing new anywhere.
    with session_scope(accounts_ctx.sessions) as session:
        session.execute(
            update(SignalRow).where(SignalRow.parent_id == parent).values(status="queued")
        )
    run_all(accounts_ctx, parent)
    assert by_key(control) == expected
    client_ids = [e["client_id"] for e in ledger(control)]
    assert len(set(client_ids)) == len(client_ids)  # derived from signal and account
    with session_scope(accounts_ctx.sessions) as session:
        positions = session.scalars(select(Position)).all()
        orders = session.scalars(select(Order)).all()
        assert sorted(p.account for p in positions) == ["alt", "default", "third"]
        assert {o.account for o in orders} == {"alt", "default", "third"}
        assert all(o.signal_id != parent for o in orders)
    assert signal_row(accounts_ctx, parent).status == "done"


def test_a_single_key_signal_keeps_todays_client_ids(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    signal_id = submit(accounts_ctx, quantity="0.01")
    assert run(accounts_ctx, signal_id).status == "done"
    (entry,) = ledger(control)
    assert entry["key"] == PAPER_API_KEY
    assert entry["client_id"] == client_order_id(signal_id, "entry")
    assert signal_row(accounts_ctx, signal_id).account == "default"


def test_one_named_account_trades_on_its_own_key_with_its_multiplier(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    ctx = replace(
        accounts_ctx,
        accounts=configured_accounts(
            accounts_ctx.settings, environ={**ENV, "PACEKEEPER_ACCOUNT_ALT_SIZE_MULTIPLIER": "3"}
        ),
    )
    signal_id = submit(ctx, account="alt", quantity="0.01")
    assert run(ctx, signal_id).status == "done"
    (entry,) = ledger(control)
    assert (entry["key"], D(entry["quantity"])) == ("alt-key", D("0.03"))


def test_the_monitor_follows_each_account_with_its_own_key(
    accounts_ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    """alt's TWAP is visible only to alt's key: the monitor reads it, records its fills and
    brackets the position there."""
    sid = submit(
        accounts_ctx, account="alt", quantity="0.05", execution={"type": "twap", "duration": 600},
        take_profit={"price": "70000"}, stop_loss={"stop_price": "60000", "limit_price": "59900"},
    )  # fmt: skip
    assert run(accounts_ctx, sid).status == "working"
    paper.clock.advance(700)
    run_cycle(accounts_ctx)
    assert by_key(control) == Counter({("alt-key", "spot_twap"): 1, ("alt-key", "oco"): 1})
    assert signal_row(accounts_ctx, sid).status == "done"
    with session_scope(accounts_ctx.sessions) as session:
        (position,) = session.scalars(select(Position)).all()
        assert (position.account, position.quantity > 0) == ("alt", True)


def test_an_account_rejected_by_the_exchange_fails_alone(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    rejected = {"status": 400, "code": -2010, "msg": "Account has insufficient balance."}
    control.post(
        "/faults",
        json={"action": "fail_before", "path": "/api/v3/order", "key": "alt-key", **rejected},
    ).raise_for_status()
    parent = submit(accounts_ctx, accounts=["alt", "third"], quantity="0.01")
    kids = run_all(accounts_ctx, parent)
    assert signal_row(accounts_ctx, kids["alt"]).status == "failed"
    assert signal_row(accounts_ctx, kids["third"]).status == "done"
    assert by_key(control) == Counter({("third-key", "spot_order"): 1})
    row = signal_row(accounts_ctx, parent)
    assert row.status == "failed"
    assert row.status_reason is not None and "third: done" in row.status_reason


def test_a_key_that_can_withdraw_is_refused_while_the_others_trade(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    control.post(
        "/api-restrictions", params={"key": "third-key"}, json={"enableWithdrawals": True}
    ).raise_for_status()
    verdicts = check_keys(accounts_ctx.clients, accounts_ctx.sessions, "warn")
    assert {v.account: v.refused is not None for v in verdicts} == {
        "default": False,
        "alt": False,
        "third": True,
    }
    parent = submit(accounts_ctx, accounts="all", quantity="0.01")
    kids = run_all(accounts_ctx, parent)
    third = signal_row(accounts_ctx, kids["third"])
    assert third.status == "refused" and "withdraw" in (third.status_reason or "")
    assert {key for key, _ in by_key(control)} == {PAPER_API_KEY, "alt-key"}
    # The permission removed, the next check lets the account trade again.
    control.post("/reset").raise_for_status()
    check_keys(accounts_ctx.clients, accounts_ctx.sessions, "warn")
    again = submit(accounts_ctx, account="third", quantity="0.01")
    assert run(accounts_ctx, again).status == "done"


def test_the_kill_switch_of_one_account_stops_only_its_entries(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    with session_scope(accounts_ctx.sessions) as session:
        controls.halt(session, reason="alt under review", account="alt")
    parent = submit(accounts_ctx, accounts=["alt", "third"], quantity="0.01")
    kids = run_all(accounts_ctx, parent)
    alt = signal_row(accounts_ctx, kids["alt"])
    assert alt.status == "refused" and "alt under review" in (alt.status_reason or "")
    assert by_key(control) == Counter({("third-key", "spot_order"): 1})
    with session_scope(accounts_ctx.sessions) as session:
        assert controls.current_halt(session) is None
        assert controls.resume(session, account="alt")
    again = submit(accounts_ctx, account="alt", quantity="0.01")
    assert run(accounts_ctx, again).status == "done"


@pytest.mark.parametrize("delay_ms", [0, 2000])  # 0: the figure without the slow account
def test_a_slow_account_does_not_hold_up_the_others(
    delay_ms: int,
    accounts_ctx: ExecContext,
    control: httpx.Client,
    paper: Paper,
    redis_conn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the threaded worker on real Redis: the parent's job fans out, each child is a
    job of its own. Two seconds on every request signed with alt's key; every account still
    gets its one entry, and the parent sums them up."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    log = paper.log
    assert isinstance(log, KeyedLog)
    log.answered.clear()
    fault = {"action": "latency", "delay_ms": delay_ms, "key": "alt-key"}
    control.post("/faults", json=fault).raise_for_status()
    parent = submit(accounts_ctx, accounts="all", quantity="0.01")
    queue = make_queue(redis_conn, accounts_ctx.settings.queue_name)
    assert enqueue_signals(queue, [parent]) == ([parent], None)
    started = time.time()
    work_once(accounts_ctx.settings, redis_conn)

    assert Counter(e["key"] for e in ledger(control)) == Counter(KEY_OF.values())
    assert signal_row(accounts_ctx, parent).status == "done"
    # The isolation itself is a figure for the report, not an assertion (no timing asserts):
    # seconds from the jobs' start to each account's entry being answered, and whether alt's
    # delayed request was still held at that moment.
    print(
        f"\nalt +{delay_ms} ms: entry answered, seconds after the jobs started (alt held?): "
        + ", ".join(f"{key[:9]} {at - started:.3f} ({held})" for at, key, held in log.answered)
    )


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"account": "nobody"}, "account", "nobody"),
        ({"accounts": ["alt", "ghost"]}, "accounts", "ghost"),
        ({"accounts": []}, "accounts", []),
        ({"account": "alt", "accounts": "all"}, "accounts", "all"),
    ],
)
def test_an_unknown_account_is_refused_at_intake_naming_the_field(
    accounts_ctx: ExecContext, fields: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(InvalidSignal) as caught:
        submit(accounts_ctx, quantity="0.01", **fields)
    assert [(e.field, e.value) for e in caught.value.errors] == [(field, value)]


def cancel_signal(ctx: ExecContext, **fields: Any) -> str:
    return submit(ctx, action="cancel", side=None, strategy="fan", **fields)


def test_a_cancel_before_the_fan_out_stops_every_account_it_names(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    parent = submit(accounts_ctx, accounts=["alt", "third"], strategy="fan", quantity="0.01")
    # The trader cancels on both accounts before the parent's job has run: no child exists.
    cancel = cancel_signal(accounts_ctx, symbol="BTCUSDT", accounts=["alt", "third"])
    run_all(accounts_ctx, cancel)
    assert signal_row(accounts_ctx, parent).status == "cancelled"
    run_all(accounts_ctx, parent)  # its job comes later all the same
    assert ledger(control) == []
    assert signal_row(accounts_ctx, parent).status == "cancelled"
    with session_scope(accounts_ctx.sessions) as session:
        kids = session.scalars(select(SignalRow).where(SignalRow.parent_id == parent)).all()
        assert {(k.account, k.status) for k in kids} <= {
            ("alt", "cancelled"),
            ("third", "cancelled"),
        }


def test_a_cancel_on_one_account_before_the_fan_out_leaves_the_others_trading(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    parent = submit(accounts_ctx, accounts=["alt", "third"], strategy="fan", quantity="0.01")
    cancel = cancel_signal(accounts_ctx, symbol="BTCUSDT", account="alt")
    outcome = run(accounts_ctx, cancel)
    assert outcome.status == "done" and parent in (outcome.reason or ""), outcome
    assert run(accounts_ctx, parent).status == "working"
    kids = run_all(accounts_ctx, parent)
    assert by_key(control) == Counter({("third-key", "spot_order"): 1})
    assert signal_row(accounts_ctx, kids["alt"]).status == "cancelled"
    assert signal_row(accounts_ctx, kids["third"]).status == "done"
    summed = signal_row(accounts_ctx, parent)
    assert summed.status == "cancelled"
    assert "alt: cancelled" in (summed.status_reason or "")
    assert "third: done" in (summed.status_reason or "")


def test_a_cancel_while_the_parent_fans_out_still_reaches_the_children_it_writes(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    # The parent's job is past its claim (processing) when the cancel runs: the cancel may
    # not wait for it, and whichever writes the alt child first, alt never trades.
    parent = submit(accounts_ctx, accounts=["alt", "third"], strategy="fan", quantity="0.01")
    with session_scope(accounts_ctx.sessions) as session:
        session.execute(update(SignalRow).where(SignalRow.id == parent).values(status="processing"))
    assert (
        run(accounts_ctx, cancel_signal(accounts_ctx, symbol="BTCUSDT", account="alt")).status
        == "done"
    )
    with session_scope(accounts_ctx.sessions) as session:
        session.execute(update(SignalRow).where(SignalRow.id == parent).values(status="queued"))
    kids = run_all(accounts_ctx, parent)
    assert by_key(control) == Counter({("third-key", "spot_order"): 1})
    assert signal_row(accounts_ctx, kids["alt"]).status == "cancelled"


def test_a_parent_whose_every_account_was_cancelled_while_it_ran_ends_cancelled(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    parent = submit(accounts_ctx, accounts=["alt", "third"], strategy="fan", quantity="0.01")
    with session_scope(accounts_ctx.sessions) as session:
        session.execute(update(SignalRow).where(SignalRow.id == parent).values(status="processing"))
    run_all(accounts_ctx, cancel_signal(accounts_ctx, symbol="BTCUSDT", accounts=["alt", "third"]))
    assert signal_row(accounts_ctx, parent).status == "processing"  # its job's to finish
    with session_scope(accounts_ctx.sessions) as session:
        session.execute(update(SignalRow).where(SignalRow.id == parent).values(status="queued"))
    run(accounts_ctx, parent)  # the job, taken again, finds both children written, ended
    ended = signal_row(accounts_ctx, parent)
    assert ended.status == "cancelled", ended.status_reason
    assert ledger(control) == []


def test_every_notification_of_an_execution_names_its_account(
    accounts_ctx: ExecContext, control: httpx.Client
) -> None:
    with session_scope(accounts_ctx.sessions) as session:
        controls.halt(session, reason="alt under review", account="alt")
    parent = submit(accounts_ctx, accounts=["alt", "third"], **BRACKETED)
    run_all(accounts_ctx, parent)  # alt refused by its halt; third fills and is protected
    with session_scope(accounts_ctx.sessions) as session:
        controls.resume(session, account="alt")
        controls.halt(session, reason="exchange maintenance")  # every account's
        controls.resume(session)

    with receiving() as receiver:
        settings = accounts_ctx.settings.model_copy(
            update={"notify_urls": SecretStr(receiver.url())}
        )
        report = deliver(accounts_ctx.sessions, settings, cooldowns=Cooldowns())
        assert report.retrying == report.failed == 0, report
        titles = sorted(message["title"] for message in receiver.messages)
    assert titles == [
        "[pacekeeper] Bracket placed: BTCUSDT (account third)",
        "[pacekeeper] Entry filled: BUY BTCUSDT 0.01 (account third)",
        "[pacekeeper] Signal refused: entry BUY BTCUSDT (account alt)",
        "[pacekeeper] Trading halted (account alt)",
        "[pacekeeper] Trading halted (every account)",
        "[pacekeeper] Trading resumed (account alt)",
        "[pacekeeper] Trading resumed (every account)",
    ]
