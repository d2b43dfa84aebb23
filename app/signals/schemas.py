"""The signal contract: what a sender may post, and the normalised signal we store.

Pure code, no I/O and no clock: the caller passes ``now``. Senders, TradingView first,
send numbers as strings (``"0.5"``), symbols in their own spelling (``BINANCE:BTCUSDT``,
``btcusdt``, ``BTC/USDT``, ``BTCUSDT.P`` for the USD-M perpetual) and names in any case;
all of that is accepted and normalised here. Unknown fields are rejected, at every level
except ``meta``, so a typo never passes silently.

Validation runs in two passes. The first checks every field on its own (type, range,
spelling) and reports all of them at once; the second, which needs valid fields, checks
the rules between fields (what each action requires, price levels against each other) and
again reports all of them. Numbers are :class:`~decimal.Decimal` throughout, never float.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.errors import FieldError
from app.exchange.filters import Market

# Numeric(38, 18) in the database: 20 digits before the point, 18 after.
MAX_ABS = Decimal("1e20")
MAX_PLACES = 18
MAX_TTL = 30 * 86_400
DIGEST_PREFIX = "digest:"


class Action(enum.StrEnum):
    ENTRY = "entry"
    TP = "tp"  # close (part of) a position, recorded as a take-profit
    SL = "sl"  # close (part of) a position, recorded as a stop-loss
    EXIT = "exit"  # close (part of) a position
    CANCEL = "cancel"  # cancel what a signal (or a strategy on a symbol) still has working
    REVERSE = "reverse"  # close the strategy's position on the symbol, enter the other side


# Actions that open a position, and so need a size, a side, and may carry levels.
OPENING = frozenset({Action.ENTRY, Action.REVERSE})


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class Urgency(enum.StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class MarginType(enum.StrEnum):
    """USD-M margin type, set on the symbol before an entry (Binance: ISOLATED / CROSSED)."""

    ISOLATED = "isolated"
    CROSS = "cross"


class Remainder(enum.StrEnum):
    """What happens to what a TWAP/VP leaves unexecuted (app/monitoring/remainder_policy.py)."""

    CANCEL = "cancel"
    MARKET = "market"
    LIMIT = "limit"


# -- value parsers (pure, reused by the tests) ------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?")
_SYMBOL = re.compile(r"[A-Z0-9]{5,20}")
_TEXT_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def parse_decimal(value: object) -> Decimal:
    """A finite Decimal from a number or a numeric string, within Numeric(38, 18)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number", "must be a number, not true/false")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # Only reachable from Python callers: JSON bodies are parsed straight to Decimal.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            raise PydanticCustomError("number", 'must be a number, e.g. 0.5 or "0.5"')
        number = Decimal(text)
    else:
        raise PydanticCustomError("number", "must be a number or a numeric string")
    if not number.is_finite():
        raise PydanticCustomError("number", "must be a finite number")
    if number.is_zero():
        return Decimal(0)
    if abs(number) >= MAX_ABS:
        raise PydanticCustomError("number", "must be smaller than 1e20")
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= -MAX_PLACES:  # the usual case: no need to count trailing zeros
        return number
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if -(exponent + trailing_zeros) > MAX_PLACES:
        raise PydanticCustomError("number", "must have at most 18 decimal places")
    return number


def parse_int(value: object) -> int:
    """An integer from a number or a numeric string ("1800", 1800, "1800.0")."""
    number = parse_decimal(value)
    if number != number.to_integral_value():
        raise PydanticCustomError("integer", "must be a whole number")
    return int(number)


def _positive(number: Decimal) -> Decimal:
    if number <= 0:
        raise PydanticCustomError("positive", "must be greater than 0")
    return number


def _ratio(number: Decimal) -> Decimal:
    if not 0 <= number <= 1:
        raise PydanticCustomError("ratio", "must be between 0 and 1")
    return number


def _non_negative(number: Decimal) -> Decimal:
    if number < 0:
        raise PydanticCustomError("non_negative", "must be 0 or more")
    return number


def _target_number(value: int) -> int:
    if value < 1:
        raise PydanticCustomError("target", "must be a target number, 1 or more")
    return value


def _percent(number: Decimal) -> Decimal:
    if not 0 < number <= 100:
        raise PydanticCustomError("percent", "must be above 0 and at most 100 (percent)")
    return number


def _leverage(value: int) -> int:
    if not 1 <= value <= 125:
        raise PydanticCustomError("leverage", "must be a whole number from 1 to 125")
    return value


def normalize_symbol(raw: str) -> tuple[str, bool]:
    """``('BTCUSDT', perpetual)`` from TradingView's and others' spellings of a symbol.

    ``BINANCE:BTCUSDT``, ``btcusdt``, ``BTC/USDT`` and ``BTC-USDT`` are all BTCUSDT; a
    ``.P`` suffix (TradingView's USD-M perpetual) sets ``perpetual``. A prefix naming
    another exchange is refused: this daemon only trades on Binance.
    """
    text = raw.strip().upper()
    if ":" in text:
        prefix, _, text = text.partition(":")
        if prefix != "BINANCE":
            raise ValueError(f"exchange {prefix or '(empty)'} is not Binance")
    perpetual = text.endswith(".P")
    if perpetual:
        text = text[:-2]
    text = text.replace("/", "").replace("-", "")
    if not _SYMBOL.fullmatch(text):
        raise ValueError("must be a Binance symbol: BTCUSDT, BINANCE:BTCUSDT, BTC/USDT, BTCUSDT.P")
    return text, perpetual


def _symbol(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("symbol", "must be a string such as BTCUSDT")
    try:
        name, perpetual = normalize_symbol(value)
    except ValueError as exc:
        raise PydanticCustomError("symbol", str(exc)) from None
    # The perpetual marker is kept until the market is decided (see parse_signal).
    return f"{name}.P" if perpetual else name


MAX_SLIPPAGE_BPS = Decimal(5000)


def _slippage_bps(number: Decimal) -> Decimal:
    if not 0 < number <= MAX_SLIPPAGE_BPS:
        raise PydanticCustomError(
            "slippage", "must be above 0 and at most {max} (basis points)", {"max": 5000}
        )
    return number


def _ttl(seconds: int) -> int:
    if not 1 <= seconds <= MAX_TTL:
        raise PydanticCustomError("ttl", "must be between 1 and {max} seconds", {"max": MAX_TTL})
    return seconds


def _text_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _TEXT_ID.fullmatch(value.strip()):
        raise PydanticCustomError("text_id", "must be 1 to 128 printable characters")
    return value.strip()


def _sender_id(value: object) -> str:
    text = _text_id(value)
    if text.startswith(DIGEST_PREFIX):
        raise PydanticCustomError("text_id", f"must not start with {DIGEST_PREFIX}")
    return text


def _strategy(value: object) -> str:
    text = _text_id(value)
    if len(text) > 64:
        raise PydanticCustomError("text_id", "must be at most 64 characters")
    return text


_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,23}$")


def _account_name(value: object) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _ACCOUNT_NAME.fullmatch(text):
        raise PydanticCustomError("account", "must be an account name (letters, digits, _)")
    return text


def _accounts(value: object) -> str | list[str]:
    """``"all"``, a list of names, or one name or comma-separated names as text."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return text
        value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, list):
        raise PydanticCustomError("accounts", 'must be a list of account names, or "all"')
    return [_account_name(item) for item in value]


def _choice(enum_cls: type[enum.StrEnum]) -> BeforeValidator:
    """Case-insensitive enum parsing with a message that lists the choices."""
    choices = ", ".join(member.value for member in enum_cls)
    upper = all(member.value.isupper() for member in enum_cls)

    def parse(value: object) -> enum.StrEnum:
        if isinstance(value, enum_cls):
            return value
        if isinstance(value, str):
            text = value.strip()
            try:
                return enum_cls(text.upper() if upper else text.lower())
            except ValueError:
                pass
        raise PydanticCustomError("choice", "must be one of: {choices}", {"choices": choices})

    return BeforeValidator(parse)


def _timestamp(value: object) -> object:
    """Epoch seconds as a number, or ISO 8601 text; a time without a zone is UTC."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(int(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise PydanticCustomError("datetime", "is not a valid time") from None
    return value


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_as_text = PlainSerializer(lambda number: format(number, "f"), return_type=str)
Number = Annotated[Decimal, PlainValidator(parse_decimal), _as_text]
Positive = Annotated[Decimal, PlainValidator(parse_decimal), AfterValidator(_positive), _as_text]
Ratio = Annotated[Decimal, PlainValidator(parse_decimal), AfterValidator(_ratio), _as_text]
Percent = Annotated[Decimal, PlainValidator(parse_decimal), AfterValidator(_percent), _as_text]
Seconds = Annotated[Decimal, PlainValidator(parse_decimal), AfterValidator(_non_negative), _as_text]
Integer = Annotated[int, PlainValidator(parse_int)]
SenderId = Annotated[str, PlainValidator(_sender_id)]
TextId = Annotated[str, PlainValidator(_text_id)]
Strategy = Annotated[str, PlainValidator(_strategy)]
AccountName = Annotated[str, PlainValidator(_account_name)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(_aware)]
SlippageBps = Annotated[
    Decimal, PlainValidator(parse_decimal), AfterValidator(_slippage_bps), _as_text
]


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- execution ---------------------------------------------------------------------------------


class MarketExecution(_Strict):
    type: Annotated[Literal["market"], BeforeValidator(_lower)] = "market"


class LimitExecution(_Strict):
    type: Annotated[Literal["limit"], BeforeValidator(_lower)]
    price: Positive


class TwapExecution(_Strict):
    type: Annotated[Literal["twap"], BeforeValidator(_lower)]
    duration: Integer  # seconds, within PACEKEEPER_TWAP_MIN_DURATION..TWAP_MAX_DURATION
    limit_price: Positive | None = None
    # Unset: cancel for entries, market for what reduces a position.
    remainder: Annotated[Remainder, _choice(Remainder)] | None = None
    max_slippage_bps: SlippageBps | None = None  # the band of a limit remainder

    @field_validator("duration")
    @classmethod
    def _within_bounds(cls, duration: int, info: ValidationInfo) -> int:
        context = info.context or {}
        low, high = context.get("twap_min_duration", 1), context.get("twap_max_duration")
        if duration < low or (high is not None and duration > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise PydanticCustomError("duration", "must be {bounds} seconds", {"bounds": bounds})
        return duration


class VpExecution(_Strict):
    type: Annotated[Literal["vp"], BeforeValidator(_lower)]
    urgency: Annotated[Urgency, _choice(Urgency)]
    limit_price: Positive | None = None
    remainder: Annotated[Remainder, _choice(Remainder)] | None = None
    max_slippage_bps: SlippageBps | None = None


EXECUTION_TYPES = ("market", "limit", "twap", "vp")


def _execution_tag(value: object) -> str | None:
    if isinstance(value, dict):
        tag = value.get("type")
        return tag.strip().lower() if isinstance(tag, str) else None
    return getattr(value, "type", None)


def _execution_shorthand(value: object) -> object:
    # "execution": "market" is shorthand for {"type": "market"}.
    return {"type": value} if isinstance(value, str) else value


Execution = Annotated[
    Annotated[MarketExecution, Tag("market")]
    | Annotated[LimitExecution, Tag("limit")]
    | Annotated[TwapExecution, Tag("twap")]
    | Annotated[VpExecution, Tag("vp")],
    Discriminator(
        _execution_tag,
        custom_error_type="execution_type",
        custom_error_message="type must be one of: market, limit, twap, vp",
    ),
    BeforeValidator(_execution_shorthand),
]


# -- levels and pace -------------------------------------------------------------------------


MAX_TARGETS = 5  # take-profit targets in a ladder


class Target(_Strict):
    """One rung of a take-profit ladder: its price and the share of the filled quantity."""

    price: Positive
    fraction: Positive


class TakeProfit(_Strict):
    """``{"price"}``, or a ladder: on the wire a list of targets, kept here as ``targets``
    (``_ladder_shape`` moves it there; error paths drop the ``targets`` again)."""

    price: Positive | None = None
    targets: list[Target] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> TakeProfit:
        if (self.price is None) == (self.targets is None):
            raise PydanticCustomError(
                "take_profit", 'must be {"price"} or a list of {"price", "fraction"}'
            )
        return self

    @property
    def nearest(self) -> Decimal:
        """The price the market reaches first: the only one, or the first target."""
        if self.targets:
            return self.targets[0].price
        assert self.price is not None
        return self.price


def _ladder_shape(value: object) -> object:
    # "take_profit": [{"price", "fraction"}, ...] is a ladder; "70000" is {"price": "70000"}.
    if isinstance(value, list):
        return {"targets": value}
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        return {"price": value}
    return value


class StopType(enum.StrEnum):
    MARKET = "market"  # spot STOP_LOSS: sells at market once triggered, even after a gap
    LIMIT = "limit"  # spot STOP_LOSS_LIMIT: rests unfilled when the price gaps past its limit


class IfCrossed(enum.StrEnum):
    EXIT = "exit"  # a stop the price already crossed closes the position at market
    ALERT = "alert"  # ... or only records an "unprotected" event for a human


class Trailing(_Strict):
    """A trailing stop: it follows the best price by ``callback_rate`` percent. Spot: the
    stop leg's ``trailingDelta`` (rate x 100 BIPS), tracking from when it is placed; USD-M:
    TRAILING_STOP_MARKET, from ``activation_price`` when given."""

    callback_rate: Positive
    activation_price: Positive | None = None


# Binance's ranges, in percent: spot TRAILING_DELTA 10-2000 BIPS, USD-M callbackRate 0.1-10.
TRAILING_RANGE = {"spot": (Decimal("0.1"), Decimal(20)), "usdm": (Decimal("0.1"), Decimal(10))}


class StopLoss(_Strict):
    stop_price: Positive
    limit_price: Positive | None = None  # only with type "limit"; else the worker picks one
    # None: "limit" when limit_price is given, else "market" (``stop_type``).
    type: Annotated[StopType, _choice(StopType)] | None = None
    if_crossed: Annotated[IfCrossed, _choice(IfCrossed)] = IfCrossed.EXIT
    # Move the stop for the rest to the entry's average price (plus fees) once this
    # take-profit target (1-based) has filled.
    breakeven_after: (
        Annotated[int, PlainValidator(parse_int), AfterValidator(_target_number)] | None
    ) = None
    trailing: Trailing | None = None

    @property
    def stop_type(self) -> StopType:
        if self.type is not None:
            return self.type
        return StopType.LIMIT if self.limit_price is not None else StopType.MARKET


def _price_shorthand(key: str) -> Any:
    # "take_profit": "70000" is shorthand for {"price": "70000"}; same for stop_loss.
    def expand(value: object) -> object:
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            return {key: value}
        return value

    return BeforeValidator(expand)


class PaceOverride(_Strict):
    """Per-signal overrides of the pace policy (see app/monitoring/pace.py)."""

    grace: Ratio | None = None
    min_ratio: Ratio | None = None
    slack: Ratio | None = None
    stall_seconds: Seconds | None = None


# -- the signal ------------------------------------------------------------------------------


class SignalIn(_Strict):
    """A signal as posted (the ``secret`` already removed), each field checked on its own."""

    id: SenderId | None = None
    action: Annotated[Action, _choice(Action)]
    symbol: Annotated[str, PlainValidator(_symbol)] | None = None
    market: Annotated[Market, _choice(Market)] | None = None
    side: Annotated[Side, _choice(Side)] | None = None
    quantity: Positive | None = None
    quote_quantity: Positive | None = None
    # Sized by the worker when it runs (app/execution/sizing.py): percent of the free balance
    # (spot) or of available margin x leverage (usdm), or percent of equity risked to the stop.
    balance_percent: Percent | None = None
    risk_percent: Percent | None = None
    execution: Execution | None = None
    take_profit: Annotated[TakeProfit, BeforeValidator(_ladder_shape)] | None = None
    stop_loss: Annotated[StopLoss, _price_shorthand("stop_price")] | None = None
    # usdm entries: set on the symbol before the entry is placed
    leverage: Annotated[int, PlainValidator(parse_int), AfterValidator(_leverage)] | None = None
    margin_type: Annotated[MarginType, _choice(MarginType)] | None = None
    ttl: Annotated[int, PlainValidator(parse_int), AfterValidator(_ttl)] | None = None
    expires_at: Timestamp | None = None
    pace: PaceOverride | None = None
    strategy: Strategy | None = None
    # For a cancel: the signal to cancel, by our signal id or the sender's id.
    target_id: TextId | None = None
    # The named accounts to execute on (app/accounts.py); neither: the account `default`.
    account: AccountName | None = None
    accounts: Annotated[Literal["all"] | list[str], PlainValidator(_accounts)] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is not None and now is not None and value <= now:
            raise PydanticCustomError("expired", "must be in the future")
        return value


class Signal(_Strict):
    """A normalised, valid signal: what is stored as the payload and what workers read."""

    id: str | None = None
    action: Action
    market: Market | None = None  # None only for a cancel by target_id
    symbol: str | None = None
    side: Side | None = None
    quantity: Positive | None = None
    quote_quantity: Positive | None = None
    balance_percent: Percent | None = None
    risk_percent: Percent | None = None
    execution: Execution | None = None  # None only for a cancel
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    leverage: int | None = None
    margin_type: MarginType | None = None
    expires_at: datetime | None = None
    pace: PaceOverride | None = None
    strategy: str | None = None
    target_id: str | None = None
    # The accounts it executes on, resolved at intake; None: only `default` (as before
    # accounts existed, so a single-key signal's payload, digest and ids are unchanged).
    accounts: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """JSON-safe form for storage: Decimals as strings, times in ISO 8601."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Signal:
        return cls.model_validate(payload)


class InvalidSignal(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def parse_signal(
    raw: dict[str, Any],
    *,
    now: datetime,
    twap_min_duration: int = 1,
    twap_max_duration: int | None = None,
    accounts: Mapping[str, Collection[str]] | None = None,
) -> Signal:
    """Validate and normalise a posted signal (without its secret); raise InvalidSignal.

    ``accounts`` maps each configured account to the markets it trades (None: `default`
    only, trading every market)."""
    context = {
        "now": now,
        "twap_min_duration": twap_min_duration,
        "twap_max_duration": twap_max_duration,
    }
    try:
        sig = SignalIn.model_validate(raw, context=context)
    except ValidationError as exc:
        raise InvalidSignal(field_errors(exc)) from None
    errors = cross_check(sig)
    targets, account_errors = resolve_accounts(sig, accounts)
    errors.extend(account_errors)
    if errors:
        raise InvalidSignal(errors)

    symbol, market = sig.symbol, sig.market
    if symbol is not None:
        perpetual = symbol.endswith(".P")
        symbol = symbol.removesuffix(".P")
        market = market or (Market.USDM if perpetual else Market.SPOT)
    expires_at = sig.expires_at
    if sig.ttl is not None:
        expires_at = now + timedelta(seconds=sig.ttl)
    execution = sig.execution
    if execution is None and sig.action is not Action.CANCEL:
        execution = MarketExecution()
    # Every value was validated above: construct without validating it all again.
    return Signal.model_construct(
        id=sig.id,
        action=sig.action,
        market=market,
        symbol=symbol,
        side=sig.side,
        quantity=sig.quantity,
        quote_quantity=sig.quote_quantity,
        balance_percent=sig.balance_percent,
        risk_percent=sig.risk_percent,
        execution=execution,
        take_profit=sig.take_profit,
        stop_loss=sig.stop_loss,
        leverage=sig.leverage,
        margin_type=sig.margin_type,
        expires_at=expires_at,
        pace=sig.pace,
        strategy=sig.strategy,
        target_id=sig.target_id,
        accounts=targets,
        meta=sig.meta,
    )


def resolve_accounts(
    sig: SignalIn, configured: Mapping[str, Collection[str]] | None
) -> tuple[list[str] | None, list[FieldError]]:
    """The account names a signal executes on (None: `default` alone), or what is wrong:
    an unknown name, or a named account that does not trade the signal's market."""
    known = configured if configured is not None else {"default": ("spot", "usdm")}
    perpetual = sig.symbol is not None and sig.symbol.endswith(".P")
    market = (sig.market or (Market.USDM if perpetual else Market.SPOT)).value
    if sig.account is not None and sig.accounts is not None:
        return None, [FieldError("accounts", sig.accounts, "give account or accounts, not both")]
    if sig.target_id is not None and (sig.account or sig.accounts) is not None:
        field_name = "account" if sig.account is not None else "accounts"
        value = sig.account or sig.accounts
        message = "a cancel by target_id reaches every account its target runs on"
        return None, [FieldError(field_name, value, message)]
    if sig.accounts == "all":
        # Every account that trades the market; the ones that do not are left out.
        names = [name for name, markets in known.items() if market in markets]
        return (None if names == ["default"] else names), []
    field_name = "account" if sig.account is not None else "accounts"
    asked = [sig.account] if sig.account is not None else list(sig.accounts or [])
    if sig.accounts is not None and not asked:
        return None, [FieldError("accounts", [], "must name at least one account, or be all")]
    errors: list[FieldError] = []
    for name in asked:
        if name not in known:
            choices = ", ".join(known)
            errors.append(FieldError(field_name, name, f"unknown account; one of: {choices}"))
        elif sig.action is not Action.CANCEL and market not in known[name]:
            errors.append(FieldError(field_name, name, f"this account does not trade {market}"))
    names = list(dict.fromkeys(asked))
    return (None if names in ([], ["default"]) else names), errors


_NOT_ON_CANCEL = (
    "side",
    "quantity",
    "quote_quantity",
    "balance_percent",
    "risk_percent",
    "execution",
    "take_profit",
    "stop_loss",
    "leverage",
    "margin_type",
    "pace",
    "ttl",
    "expires_at",
)


def cross_check(sig: SignalIn) -> list[FieldError]:
    """The rules between fields, every broken one reported."""
    errors: list[FieldError] = []

    def bad(field: str, value: Any, message: str) -> None:
        errors.append(FieldError(field, value, message))

    perpetual = sig.symbol is not None and sig.symbol.endswith(".P")
    if perpetual and sig.market is Market.SPOT:
        bad("market", sig.market.value, "the symbol is a USD-M perpetual (.P): market must be usdm")
    market = sig.market or (Market.USDM if perpetual else Market.SPOT)

    if sig.action is Action.CANCEL:
        for name in _NOT_ON_CANCEL:
            value = getattr(sig, name)
            if value is not None:
                bad(name, _dump(value), "not allowed on a cancel")
        if sig.target_id is None and (sig.symbol is None or sig.strategy is None):
            bad("target_id", None, "a cancel needs target_id, or both symbol and strategy")
        return errors

    if sig.target_id is not None:
        bad("target_id", sig.target_id, "only a cancel takes target_id")
    if sig.symbol is None:
        bad("symbol", None, f"required for {sig.action.value}")
    if sig.ttl is not None and sig.expires_at is not None:
        bad("expires_at", _dump(sig.expires_at), "give ttl or expires_at, not both")

    opens = sig.action in OPENING
    if opens:
        if sig.side is None:
            bad("side", None, f"required for {sig.action.value}")
        if market is not Market.USDM:
            for name in ("leverage", "margin_type"):
                value = getattr(sig, name)
                if value is not None:
                    bad(name, _dump(value), "leverage and margin type are for usdm futures only")
        if sig.action is Action.REVERSE and market is Market.SPOT and sig.side is Side.SELL:
            bad(
                "side",
                "sell",
                "spot cannot hold a short: a reverse on spot only turns a sell position into a "
                "buy; send exit to close a long",
            )
    else:
        for name in ("take_profit", "stop_loss"):
            value = getattr(sig, name)
            if value is not None:
                bad(name, _dump(value), "only an entry or a reverse carries these levels")
        for name in ("leverage", "margin_type"):
            value = getattr(sig, name)
            if value is not None:
                bad(name, _dump(value), "only an entry or a reverse sets leverage and margin type")
    errors.extend(_check_size(sig, opens))

    execution = sig.execution or MarketExecution()
    if sig.pace is not None and not isinstance(execution, TwapExecution | VpExecution):
        bad("pace", _dump(sig.pace), "pace applies to twap and vp executions only")
    if isinstance(execution, TwapExecution | VpExecution):
        errors.extend(
            _check_remainder(execution, sig.ttl is not None or sig.expires_at is not None)
        )

    if opens and sig.side is not None:
        errors.extend(_check_levels(sig.side, execution, sig.take_profit, sig.stop_loss))
        errors.extend(_check_ladder(sig.side, sig.take_profit, sig.stop_loss))
        if sig.stop_loss is not None and sig.stop_loss.trailing is not None:
            errors.extend(_check_trailing(sig.side, market, execution, sig.stop_loss))
    return errors


def _check_trailing(
    side: Side,
    market: Market,
    execution: MarketExecution | LimitExecution | TwapExecution | VpExecution,
    stop_loss: StopLoss,
) -> list[FieldError]:
    """A callback rate Binance accepts on the market; an activation price usdm can use."""
    errors: list[FieldError] = []
    trailing = stop_loss.trailing
    assert trailing is not None
    rate = trailing.callback_rate
    low, high = TRAILING_RANGE[market.value]
    field = "stop_loss.trailing.callback_rate"
    if not low <= rate <= high:
        errors.append(
            FieldError(
                field, format(rate, "f"), f"must be from {low} to {high} (percent) on {market}"
            )
        )
    elif market is Market.SPOT and (rate * 100) != (rate * 100).to_integral_value():
        errors.append(
            FieldError(
                field, format(rate, "f"), "must be whole basis points on spot (1.25, not 1.255)"
            )
        )
    if stop_loss.stop_type is StopType.LIMIT:
        errors.append(
            FieldError(
                "stop_loss.type", "limit", "a trailing stop sells at market once it triggers"
            )
        )
    activation = trailing.activation_price
    if activation is not None and market is Market.SPOT:
        errors.append(
            FieldError(
                "stop_loss.trailing.activation_price",
                format(activation, "f"),
                "usdm only: Binance's spot trailing stop tracks from when it is placed (its "
                "stopPrice starts a SELL's tracking on a fall, not a rise)",
            )
        )
    elif activation is not None:
        long = side is Side.BUY
        refs = [("stop_loss.stop_price", stop_loss.stop_price)]
        if isinstance(execution, LimitExecution):
            refs.append(("execution.price", execution.price))
        want = "above" if long else "below"
        for name, ref in refs:
            if (activation <= ref) if long else (activation >= ref):
                errors.append(
                    FieldError(
                        "stop_loss.trailing.activation_price",
                        format(activation, "f"),
                        f"must be {want} {name} ({format(ref, 'f')}) for a {side}",
                    )
                )
    return errors


def _check_ladder(
    side: Side, take_profit: TakeProfit | None, stop_loss: StopLoss | None
) -> list[FieldError]:
    """A ladder: at most MAX_TARGETS targets, fractions summing to 1, each price further
    into profit than the one before; a breakeven after a target that leaves something."""
    errors: list[FieldError] = []
    targets = (take_profit.targets if take_profit else None) or []
    if len(targets) > MAX_TARGETS:
        errors.append(FieldError("take_profit", len(targets), f"at most {MAX_TARGETS} targets"))
    if targets:
        total = sum((t.fraction for t in targets), Decimal(0))
        if total != 1:
            errors.append(
                FieldError(
                    "take_profit",
                    [format(t.fraction, "f") for t in targets],
                    f"the fractions must sum to 1 (they sum to {format(total, 'f')})",
                )
            )
        for i in range(1, len(targets)):
            before, price = targets[i - 1].price, targets[i].price
            if (price <= before) if side is Side.BUY else (price >= before):
                want = "above" if side is Side.BUY else "below"
                errors.append(
                    FieldError(
                        f"take_profit.{i}.price",
                        format(price, "f"),
                        f"must be {want} the previous target ({format(before, 'f')}) for a {side}",
                    )
                )
    after = stop_loss.breakeven_after if stop_loss else None
    if after is not None:
        if not targets:
            errors.append(
                FieldError(
                    "stop_loss.breakeven_after",
                    after,
                    "needs a take-profit ladder (a list of targets) to count targets",
                )
            )
        elif after >= len(targets):
            errors.append(
                FieldError(
                    "stop_loss.breakeven_after",
                    after,
                    f"must be below the number of targets ({len(targets)}): after the "
                    "last one nothing is left to protect",
                )
            )
    return errors


SIZE_FIELDS = ("quantity", "quote_quantity", "balance_percent", "risk_percent")
_SIZES = "quantity, quote_quantity, balance_percent or risk_percent"


def _check_size(sig: SignalIn, opens: bool) -> list[FieldError]:
    """Exactly one size on what opens a position, at most one on a close; balance and risk
    sizing only where a position is opened, risk only with a stop to measure it from."""
    errors: list[FieldError] = []
    given = [name for name in SIZE_FIELDS if getattr(sig, name) is not None]
    if opens and not given:
        errors.append(
            FieldError("quantity", None, f"{sig.action.value} needs exactly one of {_SIZES}")
        )
    for name in given[1:]:
        errors.append(
            FieldError(
                name,
                _dump(getattr(sig, name)),
                f"give exactly one of {_SIZES} ({given[0]} is given too)",
            )
        )
    for name in ("balance_percent", "risk_percent"):
        value = getattr(sig, name)
        if value is not None and not opens:
            errors.append(
                FieldError(
                    name,
                    _dump(value),
                    "only an entry or a reverse is sized from the balance or the risk; a close "
                    "takes quantity, or closes everything the position holds",
                )
            )
    if opens and sig.risk_percent is not None and sig.stop_loss is None:
        errors.append(
            FieldError(
                "risk_percent",
                _dump(sig.risk_percent),
                "needs stop_loss: the size is the risk divided by the distance to the stop",
            )
        )
    return errors


def _check_remainder(
    execution: TwapExecution | VpExecution, has_deadline: bool
) -> list[FieldError]:
    """A limit remainder needs its band and a deadline (then the rest goes out at market)."""
    errors: list[FieldError] = []
    limit = execution.remainder is Remainder.LIMIT
    if limit and execution.max_slippage_bps is None:
        errors.append(
            FieldError("execution.max_slippage_bps", None, "required with remainder limit")
        )
    if not limit and execution.max_slippage_bps is not None:
        errors.append(
            FieldError(
                "execution.max_slippage_bps",
                format(execution.max_slippage_bps, "f"),
                "only with remainder limit",
            )
        )
    if limit and not has_deadline:
        errors.append(
            FieldError(
                "execution.remainder",
                "limit",
                "limit needs ttl or expires_at: what the limit has not filled by then goes "
                "out at market",
            )
        )
    return errors


def _check_levels(
    side: Side,
    execution: MarketExecution | LimitExecution | TwapExecution | VpExecution,
    take_profit: TakeProfit | None,
    stop_loss: StopLoss | None,
) -> list[FieldError]:
    """A long takes profit above and stops below its price; a short the other way round."""
    errors: list[FieldError] = []
    long = side is Side.BUY
    above, below = ("above", "below") if long else ("below", "above")
    ref_field, ref = None, None
    if isinstance(execution, LimitExecution):
        ref_field, ref = "execution.price", execution.price
    elif isinstance(execution, TwapExecution | VpExecution) and execution.limit_price:
        ref_field, ref = "execution.limit_price", execution.limit_price

    def wrong_side(level: Decimal, other: Decimal, want: str) -> bool:
        return level <= other if want == "above" else level >= other

    tp = take_profit.nearest if take_profit else None
    tp_field = "take_profit.0.price" if take_profit and take_profit.targets else "take_profit.price"
    sl = stop_loss.stop_price if stop_loss else None
    for field, level, want in (
        (tp_field, tp, above),
        ("stop_loss.stop_price", sl, below),
    ):
        if level is not None and ref is not None and wrong_side(level, ref, want):
            errors.append(
                FieldError(field, str(level), f"must be {want} {ref_field} ({ref}) for a {side}")
            )
    if tp is not None and sl is not None and wrong_side(tp, sl, above):
        errors.append(
            FieldError(
                tp_field,
                str(tp),
                f"must be {above} stop_loss.stop_price ({sl}) for a {side}",
            )
        )
    if (
        stop_loss is not None
        and stop_loss.limit_price is not None
        and stop_loss.type is StopType.MARKET
    ):
        errors.append(
            FieldError(
                "stop_loss.limit_price",
                str(stop_loss.limit_price),
                'only a stop of type "limit" takes a limit price',
            )
        )
    if stop_loss is not None and stop_loss.limit_price is not None:
        # The stop closes the position: a long's stop sells, so its limit sits at or below
        # the trigger; a short's stop buys, so at or above it.
        limit, stop = stop_loss.limit_price, stop_loss.stop_price
        if (limit > stop) if long else (limit < stop):
            want = "at or below" if long else "at or above"
            errors.append(
                FieldError(
                    "stop_loss.limit_price",
                    str(limit),
                    f"must be {want} stop_price ({stop}) for a {side}",
                )
            )
    return errors


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as {field, value, message}, with dotted paths senders recognise."""
    out: list[FieldError] = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        value = err.get("input")
        message = err["msg"]
        kind = err["type"]
        # A tagged union puts the tag in the path: execution.twap.duration -> execution.duration
        if len(loc) > 1 and loc[0] == "execution" and loc[1] in EXECUTION_TYPES:
            del loc[1]
        if len(loc) > 1 and loc[:2] == ["take_profit", "targets"]:
            del loc[1]  # the ladder is a list on the wire
        if kind == "execution_type":
            loc.append("type")
            value = value.get("type") if isinstance(value, dict) else value
            message = "must be one of: market, limit, twap, vp"
        elif kind == "extra_forbidden":
            message = "unknown field" + ("; free-form data goes in meta" if len(loc) == 1 else "")
        elif kind == "missing":
            message = "required"
            value = None
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = "must be an object"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif kind in ("greater_than_equal", "less_than_equal"):
            message = message.replace("Input should be", "must be")
        out.append(FieldError(".".join(loc) or "body", value, message))
    return out
