"""Everything that talks to Binance: client, signing, errors, filters, rate limits, ids."""

from app.exchange.client import BinanceClient
from app.exchange.errors import (
    AlreadyDone,
    Duplicate,
    ExchangeError,
    IncompleteListing,
    Rejected,
    Temporary,
    UnknownOutcome,
)

__all__ = [
    "AlreadyDone",
    "BinanceClient",
    "Duplicate",
    "ExchangeError",
    "IncompleteListing",
    "Rejected",
    "Temporary",
    "UnknownOutcome",
]
