"""TWAP and VP algo orders (``/sapi/v1/algo/spot/*`` and ``/sapi/v1/algo/futures/*``).

Spot has TWAP and, since 2026-10-09, VP (``newOrderVp``: ``urgency``, no ``duration``, no
``reduceOnly``/``positionSide``); a spot VP trades the spot wallet like a spot TWAP, shows the
same lag, and keeps within both spot bounds: the VP minimum (``vp_min_notional``) and the spot
maximum (``twap_max_notional_spot``); it counts against the spot account's open algo orders
(``max_open_twap_spot``, TWAP and VP together) and against ``max_open_vp``.

When children go out and how big they are is ``cadence.py`` (shared with ``bench/pace.py``),
chosen by ``paper_algo_cadence``: ``binance`` (default) about one child a minute at a
jittered second, sizes jittered about ±30 % and adding up to the total; ``fine`` the even
slicing of fast tests, ``ceil(D / interval)`` children at ``interval = max(1 s, D /
paper_twap_slices)``. Child k sends what brings the algo to its cumulative target. A child
only trades when the price is within ``limitPrice`` (BUY: price <= limit, SELL: price >=
limit); one that could not is shown as Binance shows an immediate-or-cancel order that found
nothing, ``EXPIRED`` with nothing executed, and its quantity is caught up by the next child
that trades. A VP child takes its urgency's share (LOW 2 %, MEDIUM 5 %, HIGH 10 %) of the
symbol's volume since the previous child: every 5 to 15 s, the share jittered ±30 %, on the
``binance`` cadence; every second, exactly, on the ``fine`` one; until the whole quantity is
executed.

Children are immediate-or-cancel: with a fill ratio below 1 (``POST /paper/algo-fill``) each
child executes only that share and ends ``EXPIRED`` (partially or not filled), the rest of its
quantity is not retried by a TWAP.

Spot visibility (``paper_spot_algo_lag``, on by default): Binance's spot algo FAQ says
"Transaction details won't be available until all TWAP orders are filled". A working spot
algo in ``openOrders`` shows nothing executed (``executedQty``, ``executedAmt`` and
``avgPrice`` 0) until it ends; ``subOrders`` (its children and its totals) are current.

Statuses: ``WORKING``; ``FINISHED`` once a TWAP's last child went out (all executed, or what
the limit price allowed) or a VP has executed everything; ``CANCELLED`` (double L) after
``DELETE``; ``EXPIRED`` when Binance's post-acceptance checks fail at the first child or later
(balance or margin short, ``reduceOnly`` that would open, a ``positionSide`` that does not
match the account's position mode, ``reduceOnly`` in hedge mode). Placing answers only
``clientAlgoId``/``success``/``code``/``msg``.
Notional bounds: TWAP ``twap_min_notional`` to ``twap_max_notional_spot``/``_usdm``, VP
``vp_min_notional`` to ``vp_max_notional`` (-20204 outside them), all in USDT: the notional of
a symbol quoted in another asset (ETHBTC) is converted at that asset's USDT price (BTCUSDT).
``clientAlgoId`` reuse follows ``paper_algo_id_reuse`` (Binance does not document it):
``never`` (default) answers -20132 even after the first algo ended; ``after_end`` accepts the
id again once no algo holding it is ``WORKING``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic
from typing import TYPE_CHECKING

from paper.cadence import ChildPlan, algo_rng, twap_plan, vp_gap_ms, vp_share
from paper.errors import BinanceError, algo_error
from paper.ledger import FUTURES_TWAP, FUTURES_VP, SPOT_TWAP, SPOT_VP
from paper.numbers import ONE, ZERO, fmt, fmt8, round_down
from paper.params import Params
from paper.symbols import Lot, SymbolSpec

if TYPE_CHECKING:
    from paper.accounts import Account

SPOT, USDM = "spot", "usdm"
URGENCY_RATES = {"LOW": Decimal("0.02"), "MEDIUM": Decimal("0.05"), "HIGH": Decimal("0.10")}
CLIENT_ALGO_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")
HEX = "0123456789abcdef"


@dataclass
class SubOrder:
    order_id: int
    sub_id: int
    status: str
    orig_qty: Decimal
    executed: Decimal
    executed_amt: Decimal
    fee: Decimal
    fee_asset: str
    book_time: int
    price: Decimal


@dataclass
class Algo:
    algo_id: int
    client_algo_id: str
    market: str
    algo_type: str
    symbol: str
    side: str
    total_qty: Decimal
    book_time: int
    limit_price: Decimal | None = None
    duration_ms: int = 0
    plan: list[ChildPlan] = field(default_factory=list)  # TWAP: its children, in time order
    urgency: str | None = None
    position_side: str = "BOTH"
    reduce_only: bool = False
    status: str = "WORKING"
    end_time: int = 0
    executed: Decimal = ZERO
    executed_amt: Decimal = ZERO
    sent: Decimal = ZERO  # TWAP: quantity handed to children so far (schedule progress)
    next_child: int = 0
    vp_budget: Decimal = ZERO
    last_child_ms: int = 0  # VP: when the previous child went out (its volume window)
    rng: random.Random = field(default_factory=random.Random)
    checked: bool = False  # the post-acceptance checks ran (at the first slice)
    subs: list[SubOrder] = field(default_factory=list)
    created_mono: float = field(default_factory=monotonic)


class AlgoBook:
    def __init__(self, engine: Account) -> None:
        self.engine = engine
        self.algos: dict[int, Algo] = {}
        self.open: dict[str, dict[int, Algo]] = {SPOT: {}, USDM: {}}
        self.ended: dict[str, list[Algo]] = {SPOT: [], USDM: []}
        self.client_ids: set[str] = set()
        self.fill_ratios: dict[str, Decimal] = {}
        self.default_fill_ratio = ONE

    # placing ------------------------------------------------------------------------------

    def place(self, p: Params, market: str, algo_type: str) -> dict[str, object]:
        engine, settings = self.engine, self.engine.settings
        symbol = p.text("symbol")
        side = p.side()
        qty = p.req_decimal("quantity")
        duration = p.req_integer("duration") if algo_type == "TWAP" else 0
        urgency = p.req_enum("urgency", URGENCY_RATES) if algo_type == "VP" else None
        limit = p.decimal("limitPrice")
        reduce_only = p.boolean("reduceOnly") if market == USDM else False
        position_side = "BOTH"
        if market == USDM:
            position_side = p.enum("positionSide", ("BOTH", "LONG", "SHORT")) or "BOTH"
        spec = engine.specs.get(symbol)
        if spec is None or (market == USDM and not spec.futures):
            raise algo_error(-20121)
        client_algo_id = p.get("clientAlgoId")
        if client_algo_id is not None and not CLIENT_ALGO_ID_RE.match(client_algo_id):
            raise algo_error(-20130)
        if client_algo_id is not None and self._id_taken(client_algo_id):
            raise algo_error(-20132)
        if limit is not None and limit <= 0:
            raise algo_error(-20130)
        lot = spec.spot if market == SPOT else spec.usdm
        self._check_size(lot, qty, duration, market, algo_type)
        notional = qty * engine.price(symbol) * self.usdt_rate(spec.quote)
        if algo_type == "VP":
            low, high = settings.vp_min_notional, settings.vp_max_notional
            if market == SPOT:
                high = min(high, settings.twap_max_notional_spot)
        else:
            low = settings.twap_min_notional
            high = (
                settings.twap_max_notional_spot
                if market == SPOT
                else settings.twap_max_notional_usdm
            )
        if notional < low or notional > high:
            raise algo_error(-20204)
        self._check_open_count(market, algo_type)
        if client_algo_id is None:
            client_algo_id = engine.random_id(32, HEX)
        algo = Algo(
            algo_id=engine.ids.next("algo"),
            client_algo_id=client_algo_id,
            market=market,
            algo_type=algo_type,
            symbol=symbol,
            side=side,
            total_qty=qty,
            book_time=engine.now,
            limit_price=limit,
            urgency=urgency,
            position_side=position_side,
            reduce_only=reduce_only,
        )
        algo.rng = algo_rng(engine.seed, algo.algo_id)
        algo.last_child_ms = algo.book_time
        cadence = settings.paper_algo_cadence
        if algo_type == "TWAP":
            algo.duration_ms = duration * 1000
            algo.plan = twap_plan(
                qty, duration, lot.step, algo.rng, cadence=cadence,
                slices=settings.paper_twap_slices,
            )  # fmt: skip
            first = algo.book_time + algo.plan[0].offset_ms
        else:
            first = algo.book_time + vp_gap_ms(algo.rng, cadence=cadence)
        self.algos[algo.algo_id] = algo
        self.open[market][algo.algo_id] = algo
        self.client_ids.add(client_algo_id)
        engine.schedule(first, algo.algo_id)
        kind = {
            (SPOT, "TWAP"): SPOT_TWAP,
            (SPOT, "VP"): SPOT_VP,
            (USDM, "TWAP"): FUTURES_TWAP,
            (USDM, "VP"): FUTURES_VP,
        }[market, algo_type]
        engine.ledger.record(
            key=engine.key,
            time=engine.now,
            kind=kind,
            symbol=symbol,
            side=side,
            quantity=qty,
            ident=algo.algo_id,
            client_id=client_algo_id,
            order_type=algo_type,
        )
        return {"clientAlgoId": client_algo_id, "success": True, "code": 0, "msg": "OK"}

    def usdt_rate(self, asset: str) -> Decimal:
        """USDT per unit of ``asset``: the notional bounds are in USDT, so a symbol quoted in
        BTC converts its notional at BTCUSDT's price."""
        if asset in ("USDT", "USD"):
            return ONE
        return self.engine.price(f"{asset}USDT")

    def _id_taken(self, client_algo_id: str) -> bool:
        if client_algo_id not in self.client_ids:
            return False
        if self.engine.settings.paper_algo_id_reuse == "never":
            return True
        return any(
            a.client_algo_id == client_algo_id and a.status == "WORKING"
            for book in self.open.values()
            for a in book.values()
        )

    def _check_size(
        self, lot: Lot, qty: Decimal, duration: int, market: str, algo_type: str
    ) -> None:
        settings = self.engine.settings
        if algo_type == "TWAP":
            if duration < settings.twap_min_duration:
                raise algo_error(-20194)
            if duration > settings.twap_max_duration:
                raise algo_error(-20130)
        if qty <= 0 or qty < lot.min_qty:
            raise algo_error(-20195)
        if qty > lot.max_qty:
            raise algo_error(-20196)
        if market == USDM and algo_type == "TWAP" and qty * 60 / duration <= lot.min_qty:
            raise algo_error(-20195)

    def _check_open_count(self, market: str, algo_type: str) -> None:
        settings = self.engine.settings
        working = self.open[market].values()
        if algo_type == "VP":
            vps = sum(1 for a in working if a.algo_type == "VP")
            if vps >= settings.max_open_vp:
                raise algo_error(-20198)
        if market == SPOT:
            count, limit = len(self.open[SPOT]), settings.max_open_twap_spot
        elif algo_type == "VP":
            return
        else:
            count, limit = len(self.open[USDM]), settings.max_open_twap_usdm
        if count >= limit:
            raise algo_error(-20198)

    # execution ----------------------------------------------------------------------------

    def run_slice(self, algo_id: int, due: int) -> int | None:
        """Run the algo's slice due at ``due``; returns when the next one is due, if any."""
        algo = self.algos.get(algo_id)
        if algo is None or algo.status != "WORKING":
            return None
        spec = self.engine.specs[algo.symbol]
        lot = spec.spot if algo.market == SPOT else spec.usdm
        price = self.engine.price(algo.symbol)
        if not algo.checked:
            algo.checked = True
            if not self._viable(algo, spec, price):
                self._end(algo, "EXPIRED")
                return None
        in_limit = algo.limit_price is None or (
            price <= algo.limit_price if algo.side == "BUY" else price >= algo.limit_price
        )
        cadence = self.engine.settings.paper_algo_cadence
        if algo.algo_type == "TWAP":
            qty = algo.plan[algo.next_child].target - algo.sent
            if qty > 0 and in_limit:
                if not self._child(algo, spec, lot, qty, price, due):
                    return None
                algo.sent += qty
            elif qty > 0:
                self._record_child(algo, qty, ZERO, ZERO, ZERO, spec.quote, due, ZERO)
            algo.next_child += 1
            if algo.next_child >= len(algo.plan):
                self._end(algo, "FINISHED")
                return None
            return algo.book_time + algo.plan[algo.next_child].offset_ms
        remaining = algo.total_qty - algo.executed
        if in_limit:
            rate = URGENCY_RATES[algo.urgency or "LOW"]
            gap = max(0, due - algo.last_child_ms)
            algo.vp_budget += vp_share(rate, spec.volume, gap, algo.rng, cadence=cadence)
            qty = min(round_down(algo.vp_budget, lot.step), remaining)
            if algo.vp_budget >= remaining:
                qty = remaining
            if qty > 0:
                algo.vp_budget -= qty
                if not self._child(algo, spec, lot, qty, price, due):
                    return None
        algo.last_child_ms = due
        if algo.executed >= algo.total_qty:
            self._end(algo, "FINISHED")
            return None
        return due + vp_gap_ms(algo.rng, cadence=cadence)

    def fill_ratio(self, algo: Algo) -> Decimal:
        for key in (str(algo.algo_id), algo.client_algo_id):
            if key in self.fill_ratios:
                return self.fill_ratios[key]
        return self.default_fill_ratio

    def _viable(self, algo: Algo, spec: SymbolSpec, price: Decimal) -> bool:
        """Binance's checks after a ``success: true``: funds, margin, position mode."""
        if algo.market == SPOT:
            wallet = self.engine.spot_wallet
            if algo.side == "SELL":
                return wallet.free(spec.base) >= algo.total_qty
            return wallet.free(spec.quote) >= algo.total_qty * (algo.limit_price or price)
        futures = self.engine.futures
        ps = algo.position_side
        if (ps != "BOTH") != futures.dual or (futures.dual and algo.reduce_only):
            return False  # accepted, then expired: the position mode does not match
        if algo.reduce_only or futures.closes(ps, algo.side):
            return futures.reducible(algo.symbol, algo.side, ps) > 0
        return futures.margin_ok(algo.symbol, algo.side, algo.total_qty, price, ps)

    def _child(
        self, algo: Algo, spec: SymbolSpec, lot: Lot, qty: Decimal, price: Decimal, due: int
    ) -> bool:
        """Send one IOC child; False (and the algo expired) when it cannot be funded."""
        engine = self.engine
        executed = round_down(qty * self.fill_ratio(algo), lot.step)
        fee, fee_asset = ZERO, spec.quote
        try:
            if executed > 0 and algo.market == SPOT:
                fee, fee_asset = self._spot_trade(algo, spec, executed, price)
            elif executed > 0:
                ps = algo.position_side
                if algo.reduce_only or engine.futures.closes(ps, algo.side):
                    executed = min(executed, engine.futures.reducible(algo.symbol, algo.side, ps))
                    if executed <= 0:
                        raise BinanceError(-2022, "ReduceOnly Order is rejected.")
                fee = engine.futures.execute(
                    algo.symbol, algo.side, executed, price, reduce_only=algo.reduce_only,
                    position_side=ps,
                )  # fmt: skip
        except BinanceError:
            self._end(algo, "EXPIRED")
            return False
        amount = executed * price
        algo.executed += executed
        algo.executed_amt += amount
        self._record_child(algo, qty, executed, amount, fee, fee_asset, due, price)
        return True

    def _record_child(
        self,
        algo: Algo,
        qty: Decimal,
        executed: Decimal,
        amount: Decimal,
        fee: Decimal,
        fee_asset: str,
        due: int,
        price: Decimal,
    ) -> None:
        algo.subs.append(
            SubOrder(
                order_id=self.engine.ids.next("child"),
                sub_id=len(algo.subs) + 1,
                status="FILLED" if executed == qty else "EXPIRED",
                orig_qty=qty,
                executed=executed,
                executed_amt=amount,
                fee=fee,
                fee_asset=fee_asset,
                book_time=due,
                price=price if executed > 0 else ZERO,
            )
        )

    def _spot_trade(
        self, algo: Algo, spec: SymbolSpec, qty: Decimal, price: Decimal
    ) -> tuple[Decimal, str]:
        wallet = self.engine.spot_wallet
        rate = self.engine.settings.paper_fee_rate
        amount = qty * price
        if algo.side == "BUY":
            wallet.debit(spec.quote, amount)
            fee = round_down(qty * rate, Decimal("0.00000001"))
            wallet.credit(spec.base, qty - fee)
            return fee, spec.base
        wallet.debit(spec.base, qty)
        fee = round_down(amount * rate, Decimal("0.00000001"))
        wallet.credit(spec.quote, amount - fee)
        return fee, spec.quote

    def _end(self, algo: Algo, status: str) -> None:
        algo.status = status
        algo.end_time = self.engine.now
        self.open[algo.market].pop(algo.algo_id, None)
        self.ended[algo.market].append(algo)

    # cancels and queries ------------------------------------------------------------------

    def cancel(self, p: Params, market: str) -> dict[str, object]:
        algo_id = p.req_integer("algoId")
        algo = self.algos.get(algo_id)
        if algo is None or algo.market != market or algo.status != "WORKING":
            raise algo_error(-20124)
        self._end(algo, "CANCELLED")
        return {"algoId": algo_id, "success": True, "code": 0, "msg": "OK"}

    def open_orders(self, p: Params, market: str) -> dict[str, object]:
        rows = [
            self.render(a)
            for a in self.open[market].values()
            if self.engine.visible(a.created_mono, p.lag_s)
        ]
        return {"total": len(rows), "orders": rows}

    def historical(self, p: Params, market: str) -> dict[str, object]:
        symbol, side = p.get("symbol"), p.get("side")
        start, end = p.integer("startTime"), p.integer("endTime")
        page, size = p.page()
        rows = [
            a
            for a in reversed(self.ended[market])
            if (symbol is None or a.symbol == symbol)
            and (side is None or a.side == side)
            and (start is None or a.book_time >= start)
            and (end is None or a.book_time <= end)
            and self.engine.visible(a.created_mono, p.lag_s)
        ]
        chosen = rows[(page - 1) * size : page * size]
        return {"total": len(rows), "orders": [self.render(a) for a in chosen]}

    def sub_orders(self, p: Params, market: str) -> dict[str, object]:
        algo_id = p.req_integer("algoId")
        page, size = p.page()
        algo = self.algos.get(algo_id)
        if (
            algo is None
            or algo.market != market
            or not self.engine.visible(algo.created_mono, p.lag_s)
        ):
            raise algo_error(-20124)
        lot = self._lot(algo)
        chosen = algo.subs[(page - 1) * size : page * size]
        return {
            "total": len(algo.subs),
            "executedQty": fmt(algo.executed, lot.qty_places),
            "executedAmt": fmt8(algo.executed_amt),
            "subOrders": [self._render_sub(algo, lot, s) for s in chosen],
        }

    def _lagging(self, algo: Algo) -> bool:
        """A working spot algo shows no transaction details until it ends (Binance's FAQ)."""
        return (
            algo.market == SPOT
            and algo.status == "WORKING"
            and self.engine.settings.paper_spot_algo_lag
        )

    def _lot(self, algo: Algo) -> Lot:
        spec = self.engine.specs[algo.symbol]
        return spec.spot if algo.market == SPOT else spec.usdm

    def render(self, algo: Algo) -> dict[str, object]:
        lot = self._lot(algo)
        executed, amount = algo.executed, algo.executed_amt
        if self._lagging(algo):
            executed = amount = ZERO
        avg = amount / executed if executed else ZERO
        out: dict[str, object] = {
            "algoId": algo.algo_id,
            "symbol": algo.symbol,
            "side": algo.side,
        }
        if algo.market == USDM:
            out["positionSide"] = algo.position_side
        out.update(
            {
                "totalQty": fmt(algo.total_qty, lot.qty_places),
                "executedQty": fmt(executed, lot.qty_places),
                "executedAmt": fmt8(amount),
                "avgPrice": fmt(avg, lot.price_places),
                "clientAlgoId": algo.client_algo_id,
                "bookTime": algo.book_time,
                "endTime": algo.end_time,
                "algoStatus": algo.status,
                "algoType": algo.algo_type,
                "urgency": algo.urgency,
            }
        )
        return out

    @staticmethod
    def _render_sub(algo: Algo, lot: Lot, sub: SubOrder) -> dict[str, object]:
        return {
            "algoId": algo.algo_id,
            "orderId": sub.order_id,
            "orderStatus": sub.status,
            "executedQty": fmt(sub.executed, lot.qty_places),
            "executedAmt": fmt8(sub.executed_amt),
            "feeAmt": fmt8(-sub.fee),
            "feeAsset": sub.fee_asset,
            "bookTime": sub.book_time,
            "avgPrice": fmt(sub.price, lot.price_places),
            "side": algo.side,
            "symbol": algo.symbol,
            "subId": sub.sub_id,
            "timeInForce": "IMMEDIATE_OR_CANCEL",
            "origQty": fmt(sub.orig_qty, lot.qty_places),
        }
