"""Request parameters as Binance reads them: query string or form body, the query winning."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from paper.errors import BinanceError, illegal, mandatory

DECIMAL_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RE = re.compile(r"^-?[0-9]{1,20}$")


def parse_pairs(raw: str) -> dict[str, str]:
    """Decode ``a=1&b=2``; a name given twice is rejected as Binance does (-1101)."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in values:
            raise BinanceError(-1101, "Duplicate values for a parameter detected.")
        values[name] = value
    return values


class Params:
    """Typed access to one request's parameters; each getter raises Binance's error."""

    def __init__(self, values: dict[str, str], *, lag_s: float = 0.0) -> None:
        self.values = values
        # Read-after-write lag (seconds) switched on by a fault rule for this request.
        self.lag_s = lag_s
        # The API key that signed the request: whose account it acts on ("" when unsigned).
        self.key = ""

    @classmethod
    def merge(cls, query: str, body: str, *, lag_s: float = 0.0) -> Params:
        merged = parse_pairs(body)
        merged.update(parse_pairs(query))
        return cls(merged, lag_s=lag_s)

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value not in (None, "") else None

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def text(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise mandatory(name)
        return value

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        value = self.get(name)
        if value is None:
            if required:
                raise mandatory(name)
            return None
        if not DECIMAL_RE.match(value):
            raise illegal(name, DECIMAL_RANGE)
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the regex already guards
            raise illegal(name, DECIMAL_RANGE) from exc

    def req_decimal(self, name: str) -> Decimal:
        value = self.decimal(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.get(name)
        if value is None:
            if required:
                raise mandatory(name)
            return None
        if not INT_RE.match(value):
            raise illegal(name, "^-?[0-9]{1,20}$")
        return int(value)

    def req_integer(self, name: str) -> int:
        value = self.integer(name, required=True)
        assert value is not None
        return value

    def enum(
        self,
        name: str,
        allowed: Iterable[str],
        *,
        required: bool = False,
        error: BinanceError | None = None,
    ) -> str | None:
        options = tuple(allowed)
        value = self.get(name)
        if value is None:
            if required:
                raise mandatory(name)
            return None
        if value not in options:
            raise error or illegal(name, ", ".join(options))
        return value

    def req_enum(self, name: str, allowed: Iterable[str], error: BinanceError | None = None) -> str:
        value = self.enum(name, allowed, required=True, error=error)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise illegal(name, "true, false")
        return lowered == "true"

    def side(self) -> str:
        return self.req_enum("side", ("BUY", "SELL"), BinanceError(-1117, "Invalid side."))

    def page(self) -> tuple[int, int]:
        page = self.integer("page") or 1
        size = self.integer("pageSize") or 100
        if page < 1 or not 1 <= size <= 100:
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        return page, size
