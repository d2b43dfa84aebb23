"""USD-M futures: orders (``/fapi/v1/order``), conditional TP/SL (``/fapi/v1/algoOrder``),
positions.

Since 2025-12-09 ``/fapi/v1/order`` refuses STOP_MARKET / TAKE_PROFIT_MARKET / STOP /
TAKE_PROFIT / TRAILING_STOP_MARKET (-4120); they go to the conditional "algo service", a
different system from the sapi TWAP/VP algos, with its own ``algoId`` and ``clientAlgoId``.
"""

from __future__ import annotations

from decimal import Decimal

from app.exchange.errors import Rejected, UnknownOutcome
from app.exchange.models import (
    CommissionRate,
    ConditionalCancelled,
    ConditionalOrder,
    FuturesAccount,
    FuturesOrder,
    Position,
    SymbolBrackets,
)
from app.exchange.session import BinanceSession, parse, parse_list

NO_NEED_TO_CHANGE_MARGIN_TYPE = -4046
POSITION_SIDE_MISMATCH = -4061


def _one_id(order_id: int | None, client_id: str | None) -> None:
    if (order_id is None) == (client_id is None):
        raise ValueError("give exactly one of the exchange id or the client id")


class FuturesOrders(BinanceSession):
    # The account's position mode (True: hedge, dual-side), read once and cached; read again
    # after -4061 (``forget_position_mode``).
    _dual_side: bool | None = None

    def dual_side(self) -> bool:
        """GET /fapi/v1/positionSide/dual, cached: True when the account is in hedge mode."""
        if self._dual_side is None:
            path = "/fapi/v1/positionSide/dual"
            body = self.call("GET", path, {}, signed=True)
            value = body.get("dualSidePosition") if isinstance(body, dict) else None
            if not isinstance(value, bool):
                raise UnknownOutcome(
                    "unexpected answer shape for the position mode", method="GET", path=path
                )
            self._dual_side = value
        return self._dual_side

    def forget_position_mode(self) -> None:
        self._dual_side = None

    def change_position_mode(self, dual: bool) -> None:
        """POST /fapi/v1/positionSide/dual (Binance refuses it with positions or open orders)."""
        params = {"dualSidePosition": "true" if dual else "false"}
        self.call("POST", "/fapi/v1/positionSide/dual", params, signed=True)
        self._dual_side = dual

    def new_futures_order(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        quantity: Decimal,
        new_client_order_id: str,
        price: Decimal | None = None,
        time_in_force: str | None = None,
        reduce_only: bool | None = None,
        position_side: str | None = None,
    ) -> FuturesOrder:
        """POST /fapi/v1/order, MARKET or LIMIT (LIMIT needs ``price`` and ``time_in_force``)."""
        path = "/fapi/v1/order"
        params = {
            "symbol": symbol,
            "side": side,
            "positionSide": position_side,
            "type": type,
            "timeInForce": time_in_force,
            "quantity": quantity,
            "price": price,
            "reduceOnly": reduce_only,
            "newClientOrderId": new_client_order_id,
            "newOrderRespType": "RESULT",
        }
        body = self.call("POST", path, params, signed=True)
        return parse(FuturesOrder, body, method="POST", path=path)

    def get_futures_order(
        self, symbol: str, *, order_id: int | None = None, orig_client_order_id: str | None = None
    ) -> FuturesOrder:
        _one_id(order_id, orig_client_order_id)
        path = "/fapi/v1/order"
        params = {"symbol": symbol, "orderId": order_id, "origClientOrderId": orig_client_order_id}
        body = self.call("GET", path, params, signed=True)
        return parse(FuturesOrder, body, method="GET", path=path)

    def cancel_futures_order(
        self, symbol: str, *, order_id: int | None = None, orig_client_order_id: str | None = None
    ) -> FuturesOrder:
        """DELETE /fapi/v1/order; ``AlreadyDone`` when no open order has that id."""
        _one_id(order_id, orig_client_order_id)
        path = "/fapi/v1/order"
        params = {"symbol": symbol, "orderId": order_id, "origClientOrderId": orig_client_order_id}
        body = self.call("DELETE", path, params, signed=True)
        return parse(FuturesOrder, body, method="DELETE", path=path)

    def open_futures_orders(self, symbol: str | None = None) -> list[FuturesOrder]:
        """GET /fapi/v1/openOrders: one symbol (weight 1) or all (weight 40)."""
        path = "/fapi/v1/openOrders"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        return parse_list(FuturesOrder, body, method="GET", path=path)

    def find_futures_order(self, symbol: str, client_order_id: str) -> FuturesOrder | None:
        try:
            return self.get_futures_order(symbol, orig_client_order_id=client_order_id)
        except Rejected as exc:
            if exc.is_not_found:
                return None
            raise

    def new_conditional_order(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        trigger_price: Decimal | None,
        client_algo_id: str,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        close_position: bool | None = None,
        reduce_only: bool | None = None,
        working_type: str | None = None,
        price_protect: bool | None = None,
        time_in_force: str | None = None,
        position_side: str | None = None,
        callback_rate: Decimal | None = None,
        activate_price: Decimal | None = None,
    ) -> ConditionalOrder:
        """POST /fapi/v1/algoOrder (algoType CONDITIONAL): STOP_MARKET, TAKE_PROFIT_MARKET, …;
        TRAILING_STOP_MARKET takes ``callback_rate`` (percent) and ``activate_price``, no
        trigger price."""
        path = "/fapi/v1/algoOrder"
        params = {
            "algoType": "CONDITIONAL",
            "symbol": symbol,
            "side": side,
            "positionSide": position_side,
            "type": type,
            "timeInForce": time_in_force,
            "quantity": quantity,
            "price": price,
            "triggerPrice": trigger_price,
            "workingType": working_type,
            "closePosition": close_position,
            "priceProtect": price_protect,
            "reduceOnly": reduce_only,
            "callbackRate": callback_rate,
            "activatePrice": activate_price,
            "clientAlgoId": client_algo_id,
        }
        body = self.call("POST", path, params, signed=True)
        return parse(ConditionalOrder, body, method="POST", path=path)

    def get_conditional_order(
        self, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        _one_id(algo_id, client_algo_id)
        path = "/fapi/v1/algoOrder"
        params = {"algoId": algo_id, "clientAlgoId": client_algo_id}
        body = self.call("GET", path, params, signed=True)
        return parse(ConditionalOrder, body, method="GET", path=path)

    def cancel_conditional_order(
        self, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> ConditionalCancelled:
        """DELETE /fapi/v1/algoOrder; ``AlreadyDone`` when it is no longer open."""
        _one_id(algo_id, client_algo_id)
        path = "/fapi/v1/algoOrder"
        params = {"algoId": algo_id, "clientAlgoId": client_algo_id}
        body = self.call("DELETE", path, params, signed=True)
        return parse(ConditionalCancelled, body, method="DELETE", path=path)

    def open_conditional_orders(self, symbol: str | None = None) -> list[ConditionalOrder]:
        """GET /fapi/v1/openAlgoOrders (weight 1 with a symbol, 40 without)."""
        path = "/fapi/v1/openAlgoOrders"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        return parse_list(ConditionalOrder, body, method="GET", path=path)

    def find_conditional_order(self, client_algo_id: str) -> ConditionalOrder | None:
        try:
            return self.get_conditional_order(client_algo_id=client_algo_id)
        except Rejected as exc:
            if exc.is_not_found:
                return None
            raise

    def position_risk(self, symbol: str | None = None) -> list[Position]:
        """GET /fapi/v2/positionRisk: one row per symbol (and position side)."""
        path = "/fapi/v2/positionRisk"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        return parse_list(Position, body, method="GET", path=path)

    def futures_account(self) -> FuturesAccount:
        """GET /fapi/v3/account: wallet balance, equity and available margin."""
        path = "/fapi/v3/account"
        body = self.call("GET", path, signed=True)
        return parse(FuturesAccount, body, method="GET", path=path)

    def futures_commission_rate(self, symbol: str) -> CommissionRate:
        """GET /fapi/v1/commissionRate: the account's maker and taker rates on ``symbol``."""
        path = "/fapi/v1/commissionRate"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        return parse(CommissionRate, body, method="GET", path=path)

    def leverage_brackets(self, symbol: str) -> SymbolBrackets:
        """GET /fapi/v1/leverageBracket for one symbol (an object when a symbol is sent)."""
        path = "/fapi/v1/leverageBracket"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        if isinstance(body, list):  # some deployments answer a one-row list
            body = next((row for row in body if row.get("symbol") == symbol), None)
        return parse(SymbolBrackets, body, method="GET", path=path)

    def change_leverage(self, symbol: str, leverage: int) -> None:
        """POST /fapi/v1/leverage: the initial leverage of ``symbol``."""
        params = {"symbol": symbol, "leverage": leverage}
        self.call("POST", "/fapi/v1/leverage", params, signed=True)

    def change_margin_type(self, symbol: str, margin_type: str) -> None:
        """POST /fapi/v1/marginType, ``isolated`` or ``cross``; "no need to change" (-4046) is
        success: the symbol already has it."""
        wanted = "ISOLATED" if margin_type == "isolated" else "CROSSED"
        try:
            self.call(
                "POST", "/fapi/v1/marginType", {"symbol": symbol, "marginType": wanted}, signed=True
            )
        except Rejected as exc:
            if exc.code != NO_NEED_TO_CHANGE_MARGIN_TYPE:
                raise
