"""The append-only ledger of everything the paper exchange accepted: the judge of exactly-once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal

# Kinds of accepted things, one ledger entry each.
SPOT_ORDER = "spot_order"
OCO = "oco"
SPOT_TWAP = "spot_twap"
SPOT_VP = "spot_vp"
FUTURES_TWAP = "futures_twap"
FUTURES_VP = "futures_vp"
FUTURES_ORDER = "futures_order"
FUTURES_CONDITIONAL = "futures_conditional"
KINDS = (
    SPOT_ORDER,
    OCO,
    SPOT_TWAP,
    SPOT_VP,
    FUTURES_TWAP,
    FUTURES_VP,
    FUTURES_ORDER,
    FUTURES_CONDITIONAL,
)


@dataclass
class Entry:
    seq: int
    time: int
    kind: str
    symbol: str
    side: str
    quantity: str
    id: int
    client_id: str
    client_ids: dict[str, str] = field(default_factory=dict)
    order_type: str = ""
    # The levels it was placed at (an OCO's take-profit and stop, a conditional's trigger):
    # how a test sees a stop move.
    prices: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the API key whose account accepted it


class Ledger:
    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def record(
        self,
        *,
        key: str,
        time: int,
        kind: str,
        symbol: str,
        side: str,
        quantity: Decimal | None,
        ident: int,
        client_id: str,
        client_ids: dict[str, str] | None = None,
        order_type: str = "",
        prices: dict[str, Decimal | None] | None = None,
    ) -> None:
        self._entries.append(
            Entry(
                seq=len(self._entries) + 1,
                time=time,
                kind=kind,
                symbol=symbol,
                side=side,
                quantity=f"{quantity.normalize():f}" if quantity is not None else "",
                id=ident,
                client_id=client_id,
                client_ids=dict(client_ids or {}),
                order_type=order_type,
                prices={
                    k: f"{v.normalize():f}" for k, v in (prices or {}).items() if v is not None
                },
                key=key,
            )
        )

    def __len__(self) -> int:
        return len(self._entries)

    def rows(
        self,
        status_of: Callable[[Entry], str],
        *,
        kind: str | None = None,
        client_id: str | None = None,
        symbol: str | None = None,
        key: str | None = None,
    ) -> list[dict[str, object]]:
        out = []
        for entry in self._entries:
            if key and entry.key != key:
                continue
            if kind and entry.kind != kind:
                continue
            if symbol and entry.symbol != symbol:
                continue
            if (
                client_id
                and client_id != entry.client_id
                and client_id not in entry.client_ids.values()
            ):
                continue
            row = asdict(entry)
            row["status"] = status_of(entry)
            out.append(row)
        return out
