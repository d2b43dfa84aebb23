"""Balances per asset, with the free/locked split Binance reports."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paper.errors import INSUFFICIENT_BALANCE, rejected
from paper.numbers import ZERO


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Reservation:
    """Funds locked for a resting order (or an OCO list as a whole)."""

    asset: str
    amount: Decimal


class Wallet:
    def __init__(self, initial: dict[str, Decimal]) -> None:
        self.balances: dict[str, Balance] = {a: Balance(free=v) for a, v in initial.items()}

    def get(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def free(self, asset: str) -> Decimal:
        return self.get(asset).free

    def set_free(self, asset: str, amount: Decimal) -> None:
        self.get(asset).free = amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self.get(asset).free += amount

    def debit(self, asset: str, amount: Decimal) -> None:
        """Take ``amount`` from free funds; rejects (-2010) when short."""
        balance = self.get(asset)
        if balance.free < amount:
            raise rejected(INSUFFICIENT_BALANCE)
        balance.free -= amount

    def reserve(self, asset: str, amount: Decimal) -> Reservation:
        self.debit(asset, amount)
        self.get(asset).locked += amount
        return Reservation(asset, amount)

    def release(self, reservation: Reservation | None) -> None:
        if reservation is None or reservation.amount == 0:
            return
        balance = self.get(reservation.asset)
        balance.locked -= reservation.amount
        balance.free += reservation.amount
        reservation.amount = ZERO
