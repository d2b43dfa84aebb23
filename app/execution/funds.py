"""What the account can put into an entry sized by ``balance_percent`` or ``risk_percent``,
read from the exchange when the entry is planned (the arithmetic is ``sizing``, pure).

Spot: ``GET /api/v3/account`` gives the free balances, the symbol's two assets for equity
and the taker commission. USD-M: ``GET /fapi/v3/account`` gives available margin and equity
(``totalMarginBalance``), ``/fapi/v1/commissionRate`` the taker rate, and the leverage is the
signal's own or, when it sets none, the symbol's current one (``positionRisk``). The
max-notional guards become a cap: the tightest of ``max_notional_per_signal`` and what
``max_notional_per_symbol`` leaves above the symbol's exposure (the guards still check the
result, under the lock, as for every entry).
"""

from __future__ import annotations

from decimal import Decimal

from app.db import session_scope
from app.exchange.errors import Temporary, UnknownOutcome
from app.exchange.filters import FilterViolation, SymbolRules, round_price
from app.execution import queries
from app.execution.claims import Claim
from app.execution.context import ExecContext
from app.execution.planning import Refused
from app.execution.sizing import Funds, Method, Sized, size
from app.signals.schemas import LimitExecution, MarketExecution, Signal, TwapExecution, VpExecution

# Binance's base spot rate, used only when an account answer carries no commission at all.
DEFAULT_SPOT_FEE = Decimal("0.001")


def entry_price(signal: Signal, rules: SymbolRules, price: Decimal) -> Decimal:
    """The price the entry is expected to pay: its limit, or ``price`` (last / mark)."""
    assert signal.side is not None
    side = signal.side.value.upper()
    execution = signal.execution
    try:
        if isinstance(execution, LimitExecution):
            return round_price(rules, execution.price, side)
        if isinstance(execution, TwapExecution | VpExecution) and execution.limit_price:
            return round_price(rules, execution.limit_price, side, field="limit_price")
    except FilterViolation as exc:
        raise Refused(str(exc)) from None
    return price


def read_funds(ctx: ExecContext, signal: Signal, rules: SymbolRules, price: Decimal) -> Funds:
    """The account as the entry will find it; a read whose answer never came is temporary
    (a read changes nothing, so the retry simply reads again)."""
    try:
        return _read_funds(ctx, signal, rules, price)
    except UnknownOutcome as exc:
        raise Temporary(f"reading the account to size the entry: {exc}") from None


def _read_funds(ctx: ExecContext, signal: Signal, rules: SymbolRules, price: Decimal) -> Funds:
    assert signal.side is not None and signal.symbol is not None
    if signal.market is not None and signal.market.value == "usdm":
        account = ctx.client.futures_account()
        fee = ctx.client.futures_commission_rate(signal.symbol).takerCommissionRate
        leverage = signal.leverage
        if leverage is None:
            rows = ctx.client.position_risk(signal.symbol)
            current = next((r.leverage for r in rows if r.leverage), None)
            leverage = int(current) if current is not None else 1
        return Funds(
            free=account.availableBalance, asset=rules.quote_asset,
            equity=account.totalMarginBalance, fee_rate=fee, leverage=leverage,
        )  # fmt: skip
    spot = ctx.client.account()
    buy = signal.side.value == "buy"
    asset = rules.quote_asset if buy else rules.base_asset
    equity = spot.total(rules.quote_asset) + spot.total(rules.base_asset) * price
    taker = spot.taker_rate()
    return Funds(
        free=spot.free(asset), asset=asset, equity=equity,
        fee_rate=DEFAULT_SPOT_FEE if taker is None else taker,
    )  # fmt: skip


def notional_cap(ctx: ExecContext, claim: Claim, signal: Signal, price: Decimal) -> Decimal | None:
    """The tightest max-notional guard left for this entry, or None when there is none."""
    assert signal.market is not None and signal.symbol is not None
    caps = []
    if ctx.settings.max_notional_per_signal is not None:
        caps.append(ctx.settings.max_notional_per_signal)
    account = ctx.account_config
    if account is not None and account.max_notional is not None:
        caps.append(account.max_notional)
    if ctx.settings.max_notional_per_symbol is not None:
        with session_scope(ctx.sessions) as session:
            held = queries.exposure(
                session, signal.market.value, signal.symbol, price,
                exclude=claim.signal_id, account=ctx.account,
            )  # fmt: skip
        caps.append(ctx.settings.max_notional_per_symbol - held)
    return min(caps) if caps else None


def account_size(
    ctx: ExecContext, claim: Claim, signal: Signal, rules: SymbolRules, price: Decimal
) -> Sized | None:
    """The entry's quantity from the account, when the signal asks for one; else None."""
    if signal.balance_percent is not None:
        method, percent = Method.BALANCE, signal.balance_percent
    elif signal.risk_percent is not None:
        method, percent = Method.RISK, signal.risk_percent
    else:
        return None
    assert signal.market is not None and signal.side is not None
    at = entry_price(signal, rules, price)
    return size(
        method, percent, market=signal.market.value, side=signal.side.value.upper(), price=at,
        funds=read_funds(ctx, signal, rules, price), rules=rules,
        market_order=isinstance(signal.execution, MarketExecution | None),
        stop_price=signal.stop_loss.stop_price if signal.stop_loss is not None else None,
        max_notional=notional_cap(ctx, claim, signal, at),
    )  # fmt: skip
