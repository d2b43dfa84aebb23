"""``/paper/...``: what Binance does not have. No signature; bind the server to localhost.

The ledger (the judge for exactly-once tests), prices and price gaps, volatility, balances,
positions, fault switches, per-algo fill pace, the API key's restrictions, the manual clock,
and a reset.
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from paper import gaps
from paper.clock import ManualClock
from paper.deps import Paper, default_restrictions
from paper.faults import FaultSpec
from paper.futures_views import render_position
from paper.ledger import KINDS
from paper.numbers import ZERO, fmt8

router = APIRouter(prefix="/paper")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceBody(Strict):
    symbol: str
    price: Decimal = Field(gt=0)


class GapBody(Strict):
    symbol: str
    to: Decimal = Field(gt=0)
    start: Decimal | None = Field(None, gt=0, alias="from")


class BusyBody(Strict):
    on: bool


class VolatilityBody(Strict):
    symbol: str | None = None
    volatility: Decimal = Field(ge=0)


class BalancesBody(Strict):
    account: str = Field("spot", pattern="^(spot|usdm)$")
    balances: dict[str, Decimal]


class PositionBody(Strict):
    symbol: str
    positionAmt: Decimal
    entryPrice: Decimal | None = None


class FillBody(Strict):
    algoId: int | None = None
    clientAlgoId: str | None = None
    ratio: Decimal = Field(ge=0, le=1)


class ClockBody(Strict):
    advance: float | None = Field(None, ge=0)
    set_ms: int | None = None


class ResetBody(Strict):
    seed: int | None = None


def _symbol(paper: Paper, symbol: str) -> str:
    if symbol not in paper.engine.specs:
        raise HTTPException(404, f"unknown symbol {symbol}")
    return symbol


def _key(paper: Paper, key: str | None) -> str:
    """An account's API key (``?key=``); the configured key's account without one."""
    if key is None:
        return paper.engine.default.key
    if key not in paper.engine.accounts:
        raise HTTPException(404, "no paper account has this API key")
    return key


@router.get("/ledger")
def ledger(
    paper: Paper,
    kind: str | None = None,
    client_id: str | None = None,
    symbol: str | None = None,
    key: str | None = None,
) -> Response:
    """Every accepted order, each entry naming the API key whose account took it (all
    accounts, or one with ``?key=``)."""
    if kind is not None and kind not in KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}")
    with paper.engine.session() as engine:
        rows = engine.ledger.rows(
            engine.ledger_status,
            kind=kind,
            client_id=client_id,
            symbol=symbol,
            key=_key(paper, key) if key is not None else None,
        )
    return JSONResponse({"count": len(rows), "entries": rows})


@router.get("/state")
def state(paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(
            {
                "time": engine.now,
                "serverTime": paper.server_ms(),
                "prices": {s: fmt8(engine.price(s)) for s in engine.specs},
                "volatility": {s: str(p.volatility) for s, p in engine.market.paths.items()},
                "balances": _balances(paper),
                "positions": {
                    s: {"positionAmt": str(p.amt), "entryPrice": str(p.entry)}
                    for s, p in engine.futures.positions.items()
                    if p.amt
                },
                "open": {
                    "spot_orders": sum(len(b) for b in engine.spot.open.values()),
                    "order_lists": len(engine.spot.oco.open_lists),
                    "spot_algos": len(engine.algos.open["spot"]),
                    "futures_algos": len(engine.algos.open["usdm"]),
                    "futures_orders": sum(len(b) for b in engine.futures.open.values()),
                    "conditionals": sum(len(b) for b in engine.futures.conditional.open.values()),
                },
                "faults": paper.faults.views(),
                "manual_clock": isinstance(paper.clock, ManualClock),
            }
        )


@router.post("/price")
def set_price(body: PriceBody, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = _symbol(paper, body.symbol)
        engine.set_price(symbol, body.price)
        return JSONResponse({"symbol": symbol, "price": fmt8(engine.price(symbol))})


@router.post("/gap")
def gap(body: GapBody, paper: Paper) -> Response:
    """Jump straight to ``to`` (from ``from`` when given): nothing trades in between."""
    with paper.engine.session() as engine:
        symbol = _symbol(paper, body.symbol)
        return JSONResponse(gaps.jump(engine, symbol, body.to, body.start))


@router.post("/futures-busy")
def set_futures_busy(body: BusyBody, paper: Paper) -> Response:
    """USD-M MARKET orders answered NEW (executed 0) and filled at the next price move."""
    with paper.engine.session() as engine:
        engine.futures.market_rests = body.on
        return JSONResponse({"busy": body.on})


@router.post("/volatility")
def set_volatility(body: VolatilityBody, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbols = [_symbol(paper, body.symbol)] if body.symbol else list(engine.specs)
        for symbol in symbols:
            engine.market.paths[symbol].volatility = body.volatility
        return JSONResponse({"symbols": symbols, "volatility": str(body.volatility)})


def _balances(paper: Paper, key: str | None = None) -> dict[str, dict[str, dict[str, str]]]:
    engine = paper.engine.account(_key(paper, key))
    return {
        name: {
            asset: {"free": fmt8(b.free), "locked": fmt8(b.locked)}
            for asset, b in sorted(wallet.balances.items())
        }
        for name, wallet in (("spot", engine.spot_wallet), ("usdm", engine.futures_wallet))
    }


@router.get("/balances")
def get_balances(paper: Paper, key: str | None = None) -> Response:
    with paper.engine.session():
        return JSONResponse(_balances(paper, key))


@router.post("/balances")
def set_balances(body: BalancesBody, paper: Paper, key: str | None = None) -> Response:
    """Set the free amount of each asset given (locked funds are left alone), in the
    configured key's account or ``?key=``'s."""
    with paper.engine.session():
        engine = paper.engine.account(_key(paper, key))
        wallet = engine.spot_wallet if body.account == "spot" else engine.futures_wallet
        for asset, amount in body.balances.items():
            wallet.set_free(asset.upper(), amount)
        return JSONResponse(_balances(paper, key))


@router.post("/positions")
def set_position(body: PositionBody, paper: Paper) -> Response:
    """Set a USD-M position directly (entry defaults to the current price)."""
    with paper.engine.session() as engine:
        symbol = engine.usdm_spec(_symbol(paper, body.symbol)).symbol
        position = engine.futures.positions[symbol]
        position.amt = body.positionAmt
        position.entry = ZERO if not body.positionAmt else (body.entryPrice or engine.price(symbol))
        position.update_time = engine.now
        engine.futures.conditional.on_position(symbol)
        return JSONResponse(render_position(engine.futures, position, 2))


@router.get("/faults")
def list_faults(paper: Paper) -> Response:
    """The rules, and how many 429 and 418 answers were given since the last clear."""
    return JSONResponse({"faults": paper.faults.views(), "served": paper.faults.served_counts()})


@router.post("/faults")
def add_fault(body: FaultSpec, paper: Paper) -> Response:
    return JSONResponse(paper.faults.add(body).view())


@router.delete("/faults")
def clear_faults(paper: Paper) -> Response:
    paper.faults.clear()
    return JSONResponse({"faults": []})


@router.delete("/faults/{rule_id}")
def remove_fault(rule_id: int, paper: Paper) -> Response:
    if not paper.faults.remove(rule_id):
        raise HTTPException(404, f"no fault rule {rule_id}")
    return JSONResponse({"faults": paper.faults.views()})


@router.post("/algo-fill")
def set_fill_ratio(body: FillBody, paper: Paper) -> Response:
    """Share of each TWAP/VP child that executes: one algo (by id or client id) or, with
    neither, every algo without its own setting. 0 stalls an algo, 1 is normal."""
    with paper.engine.session() as engine:
        algos = engine.algos
        if body.algoId is not None:
            algos.fill_ratios[str(body.algoId)] = body.ratio
        elif body.clientAlgoId is not None:
            algos.fill_ratios[body.clientAlgoId] = body.ratio
        else:
            algos.default_fill_ratio = body.ratio
        return JSONResponse(
            {
                "default": str(algos.default_fill_ratio),
                "overrides": {k: str(v) for k, v in algos.fill_ratios.items()},
            }
        )


@router.post("/api-restrictions")
def set_restrictions(body: dict[str, object], paper: Paper, key: str | None = None) -> Response:
    """What apiRestrictions answers for one key (``?key=``; the configured key without)."""
    unknown = set(body) - set(default_restrictions()) - {"tradingAuthorityExpirationTime"}
    if unknown:
        raise HTTPException(422, f"unknown fields: {', '.join(sorted(unknown))}")
    restrictions = paper.restrictions_of(_key(paper, key))
    restrictions.update(body)
    return JSONResponse(dict(restrictions))


@router.post("/clock")
def move_clock(body: ClockBody, paper: Paper) -> Response:
    clock = paper.clock
    if not isinstance(clock, ManualClock):
        raise HTTPException(409, "the paper exchange runs on the real clock")
    if body.advance is not None:
        clock.advance(body.advance)
    if body.set_ms is not None:
        try:
            clock.set(body.set_ms)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    with paper.engine.session() as engine:
        return JSONResponse({"time": engine.now})


@router.post("/reset")
def reset(paper: Paper, body: ResetBody | None = None) -> Response:
    """Back to the starting state: prices, balances, orders, ledger, faults, counters."""
    paper.engine.reset(body.seed if body else None)
    paper.faults.clear()
    paper.weights.reset()
    paper.restrictions.clear()
    return JSONResponse({"time": paper.engine.now, "seed": paper.engine.seed})
