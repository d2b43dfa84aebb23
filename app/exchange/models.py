"""Typed views of Binance's responses, with Binance's own field names.

Bodies are decoded with the stdlib ``json`` and ``parse_float=Decimal``, so ids stay exact
integers (some exceed 2**53) and no float ever appears. Quantities and prices arrive as strings
and become ``Decimal``; an empty string (``"activatePrice": ""``) becomes ``None``. Statuses
that Binance documents become enum members; any other value is kept as the string it was,
never an error. Fields Binance adds later are kept in ``model_extra``.

Spelling trap: sapi algo orders end ``CANCELLED`` (double L); spot and futures orders and the
USD-M conditional algo service end ``CANCELED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


Amount = Annotated[Decimal | None, BeforeValidator(_blank_to_none)]


class AlgoStatus(StrEnum):
    """``algoStatus`` of sapi TWAP/VP orders (only these two are documented)."""

    WORKING = "WORKING"
    CANCELLED = "CANCELLED"


class OrderStatus(StrEnum):
    """``status`` of spot and futures orders, and of OCO legs."""

    NEW = "NEW"
    PENDING_NEW = "PENDING_NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PENDING_CANCEL = "PENDING_CANCEL"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"


class ConditionalStatus(StrEnum):
    """``algoStatus`` of USD-M conditional orders (``/fapi/v1/algoOrder``)."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


# Known values become enum members; anything else stays the string it was.
AlgoStatusValue = Annotated[AlgoStatus | str, Field(union_mode="left_to_right")]
OrderStatusValue = Annotated[OrderStatus | str, Field(union_mode="left_to_right")]
ConditionalStatusValue = Annotated[ConditionalStatus | str, Field(union_mode="left_to_right")]

OPEN_ORDER_STATUSES = frozenset({"NEW", "PENDING_NEW", "PARTIALLY_FILLED", "PENDING_CANCEL"})


class BinanceModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


# ---- sapi algo orders (TWAP, VP) -------------------------------------------------------


class AlgoAccepted(BinanceModel):
    """Answer to newOrderTwap / newOrderVp: the client id only, no algoId."""

    clientAlgoId: str
    success: bool
    code: int = 0
    msg: str = ""


class AlgoCancelled(BinanceModel):
    algoId: int
    success: bool
    code: int = 0
    msg: str = ""


class AlgoOrder(BinanceModel):
    """One TWAP/VP parent order from openOrders or historicalOrders."""

    algoId: int
    symbol: str
    side: str
    positionSide: str | None = None
    totalQty: Decimal
    executedQty: Decimal
    executedAmt: Decimal
    avgPrice: Decimal
    clientAlgoId: str
    bookTime: int
    endTime: int = 0
    algoStatus: AlgoStatusValue
    algoType: str | None = None
    urgency: str | None = None

    @property
    def is_working(self) -> bool:
        return self.algoStatus == AlgoStatus.WORKING


def algo_settled(row: AlgoOrder, subs: Sequence[SubOrder]) -> bool:
    """The algo has ended and its children agree: none still open, and what they executed
    adds up to the algo's ``executedQty``. Only then are its fills final."""
    ended = [s for s in subs if s.orderStatus not in OPEN_ORDER_STATUSES]
    return (
        not row.is_working
        and len(ended) == len(subs)
        and sum((s.executedQty for s in ended), Decimal(0)) == row.executedQty
    )


class AlgoOrderPage(BinanceModel):
    total: int
    orders: list[AlgoOrder] = Field(default_factory=list)


class SubOrder(BinanceModel):
    """One child order of an algo (its fills come as executedQty/executedAmt/fee)."""

    algoId: int
    orderId: int
    orderStatus: OrderStatusValue
    executedQty: Decimal
    executedAmt: Decimal
    feeAmt: Amount = None
    feeAsset: str | None = None
    bookTime: int
    avgPrice: Amount = None
    side: str
    symbol: str
    subId: int
    timeInForce: str | None = None
    origQty: Amount = None


class SubOrderPage(BinanceModel):
    total: int
    executedQty: Decimal = Decimal(0)
    executedAmt: Decimal = Decimal(0)
    subOrders: list[SubOrder] = Field(default_factory=list)


# ---- spot orders and OCO order lists ---------------------------------------------------


class Fill(BinanceModel):
    price: Decimal
    qty: Decimal
    commission: Decimal
    commissionAsset: str
    tradeId: int | None = None


class Trade(BinanceModel):
    """One trade of a spot order (``GET /api/v3/myTrades``), with the commission paid."""

    id: int
    orderId: int
    price: Decimal
    qty: Decimal
    quoteQty: Decimal
    commission: Decimal
    commissionAsset: str
    time: int | None = None
    isBuyer: bool | None = None
    isMaker: bool | None = None


class Order(BinanceModel):
    """A spot order (new, query or cancel answer; also an OCO ``orderReports`` entry)."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    origClientOrderId: str | None = None  # on cancel answers: the order's own id
    transactTime: int | None = None
    price: Amount = None
    origQty: Amount = None
    executedQty: Amount = None
    cummulativeQuoteQty: Amount = None
    origQuoteOrderQty: Amount = None
    status: OrderStatusValue | None = None  # absent from ACK answers
    timeInForce: str | None = None
    type: str | None = None
    side: str | None = None
    stopPrice: Amount = None
    time: int | None = None
    updateTime: int | None = None
    workingTime: int | None = None
    expiryReason: str | None = None
    fills: list[Fill] = Field(default_factory=list)

    @property
    def client_order_id(self) -> str:
        """The id the order was placed with (a cancel answer's clientOrderId is the cancel's)."""
        return self.origClientOrderId or self.clientOrderId

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ORDER_STATUSES


class OrderRef(BinanceModel):
    symbol: str
    orderId: int
    clientOrderId: str


class OrderList(BinanceModel):
    """An OCO order list; ``orderReports`` only on new and cancel answers."""

    orderListId: int
    contingencyType: str
    listStatusType: str
    listOrderStatus: str
    listClientOrderId: str
    transactionTime: int
    symbol: str
    orders: list[OrderRef] = Field(default_factory=list)
    orderReports: list[Order] = Field(default_factory=list)

    @property
    def is_done(self) -> bool:
        return self.listOrderStatus == "ALL_DONE"


# ---- market data and account -----------------------------------------------------------


class TickerPrice(BinanceModel):
    symbol: str
    price: Decimal


class AvgPrice(BinanceModel):
    mins: int
    price: Decimal
    closeTime: int | None = None


class MarkPrice(BinanceModel):
    """USD-M ``premiumIndex``: mark and index price of one symbol."""

    symbol: str
    markPrice: Decimal
    indexPrice: Amount = None
    lastFundingRate: Amount = None
    nextFundingTime: int | None = None
    time: int | None = None


class Balance(BinanceModel):
    asset: str
    free: Decimal
    locked: Decimal


class CommissionRates(BinanceModel):
    maker: Decimal
    taker: Decimal


class Account(BinanceModel):
    canTrade: bool = False
    canWithdraw: bool = False
    canDeposit: bool = False
    accountType: str | None = None
    updateTime: int | None = None
    takerCommission: int | None = None  # basis points, the older field
    commissionRates: CommissionRates | None = None
    balances: list[Balance] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)

    def free(self, asset: str) -> Decimal:
        for balance in self.balances:
            if balance.asset == asset:
                return balance.free
        return Decimal(0)

    def total(self, asset: str) -> Decimal:
        """Free plus locked (in open orders)."""
        for balance in self.balances:
            if balance.asset == asset:
                return balance.free + balance.locked
        return Decimal(0)

    def taker_rate(self) -> Decimal | None:
        """The account's taker commission as a fraction (0.001 = 0.1 %), if it says."""
        if self.commissionRates is not None:
            return self.commissionRates.taker
        if self.takerCommission is not None:
            return Decimal(self.takerCommission) / 10_000
        return None


class FuturesAccount(BinanceModel):
    """``GET /fapi/v3/account``: the USD-M account's totals (in USDT for a single-asset
    account); ``assets`` and ``positions`` are kept in ``model_extra``."""

    totalWalletBalance: Decimal
    totalUnrealizedProfit: Decimal = Decimal(0)
    totalMarginBalance: Decimal  # wallet balance + unrealized PnL: the account's equity
    availableBalance: Decimal  # what new positions can use as margin
    totalInitialMargin: Amount = None


class CommissionRate(BinanceModel):
    """``GET /fapi/v1/commissionRate``: the account's fee rates on one USD-M symbol."""

    symbol: str
    makerCommissionRate: Decimal
    takerCommissionRate: Decimal


class ApiRestrictions(BinanceModel):
    """What the API key may do (``/sapi/v1/account/apiRestrictions``)."""

    ipRestrict: bool = False
    createTime: int | None = None
    enableReading: bool = False
    enableWithdrawals: bool = False
    enableInternalTransfer: bool = False
    enableMargin: bool = False
    enableFutures: bool = False
    permitsUniversalTransfer: bool = False
    enableVanillaOptions: bool = False
    enableSpotAndMarginTrading: bool = False
    tradingAuthorityExpirationTime: int | None = None


# ---- USD-M futures ---------------------------------------------------------------------


class FuturesOrder(BinanceModel):
    """A ``/fapi/v1/order`` order."""

    orderId: int
    symbol: str
    status: OrderStatusValue
    clientOrderId: str
    price: Amount = None
    avgPrice: Amount = None
    origQty: Amount = None
    executedQty: Amount = None
    cumQuote: Amount = None
    timeInForce: str | None = None
    type: str | None = None
    reduceOnly: bool = False
    closePosition: bool = False
    side: str
    positionSide: str | None = None
    stopPrice: Amount = None
    workingType: str | None = None
    origType: str | None = None
    updateTime: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ORDER_STATUSES


class ConditionalOrder(BinanceModel):
    """A USD-M conditional order (``/fapi/v1/algoOrder``): STOP_MARKET, TAKE_PROFIT_MARKET..."""

    algoId: int
    clientAlgoId: str
    algoType: str = "CONDITIONAL"
    orderType: str
    symbol: str
    side: str
    positionSide: str | None = None
    timeInForce: str | None = None
    quantity: Amount = None
    algoStatus: ConditionalStatusValue
    triggerPrice: Amount = None
    price: Amount = None
    workingType: str | None = None
    closePosition: bool = False
    priceProtect: bool = False
    reduceOnly: bool = False
    createTime: int | None = None
    updateTime: int | None = None
    triggerTime: int | None = None
    actualOrderId: Annotated[int | None, BeforeValidator(_blank_to_none)] = None
    actualPrice: Amount = None
    actualQty: Amount = None

    @property
    def is_open(self) -> bool:
        return self.algoStatus in ("NEW", "TRIGGERING")


class ConditionalCancelled(BinanceModel):
    algoId: int
    clientAlgoId: str
    code: str | int | None = None
    msg: str = ""


class Position(BinanceModel):
    """One row of USD-M position information (``positionRisk``)."""

    symbol: str
    positionSide: str = "BOTH"
    positionAmt: Decimal
    entryPrice: Amount = None
    markPrice: Amount = None
    unRealizedProfit: Amount = None
    liquidationPrice: Amount = None
    leverage: Amount = None
    marginType: str | None = None  # "cross" / "isolated" (v2 only)
    maxNotionalValue: Amount = None
    notional: Amount = None
    updateTime: int | None = None


class LeverageBracket(BinanceModel):
    bracket: int
    initialLeverage: int
    notionalCap: Decimal
    notionalFloor: Decimal


class SymbolBrackets(BinanceModel):
    """``GET /fapi/v1/leverageBracket`` for one symbol."""

    symbol: str
    brackets: list[LeverageBracket]

    def max_leverage(self) -> int:
        return max((b.initialLeverage for b in self.brackets), default=0)

    def max_notional(self, leverage: int) -> Decimal:
        """The largest position ``leverage`` allows: the highest cap of a bracket whose initial
        leverage still reaches it (0 when none does)."""
        caps = [b.notionalCap for b in self.brackets if b.initialLeverage >= leverage]
        return max(caps, default=Decimal(0))
