"""A Binance-compatible paper exchange: the subset of REST endpoints Pacekeeper uses.

Start it with ``pacekeeper paper``; build it in tests with
``paper.app.create_app(PaperSettings(...), clock=ManualClock())``. The ``/paper/...``
routes (no signature) expose the ledger, prices, balances and fault switches. It has its own
settings (``paper.settings``) and imports nothing from ``app``.
"""
