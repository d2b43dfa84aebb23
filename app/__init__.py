"""Pacekeeper: webhook signals to Binance algo orders, with a pace monitor."""

__version__ = "0.1.0"
