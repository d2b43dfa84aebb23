"""Binance error answers: ``{"code": -1121, "msg": "Invalid symbol."}`` and Binance's HTTP code."""

from __future__ import annotations

from collections.abc import Mapping


class BinanceError(Exception):
    """An error the paper exchange answers exactly as Binance would."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


def rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg)


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
BAD_PRICE_RELATIONSHIP = "The relationship of the prices for the orders is not correct."


def unknown_order() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


# sapi algo (TWAP / VP)
def algo_error(code: int) -> BinanceError:
    return BinanceError(code, ALGO_MESSAGES[code])


ALGO_MESSAGES = {
    -20121: "Invalid symbol.",
    -20124: "Invalid algo id or it has been completed.",
    -20130: "Invalid data sent for a parameter.",
    -20132: "The client algo id is duplicated.",
    -20194: "Duration is too short to execute all required quantity.",
    -20195: "The total size is too small.",
    -20196: "The total size is too large.",
    -20198: "Reach the max open orders allowed.",
    -20204: "The notional of USD is less or more than the limit.",
}
