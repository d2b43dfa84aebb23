"""A Binance-compatible paper exchange: the subset of REST endpoints Pacekeeper uses.

Start it with ``pacekeeper paper``; build it in tests with
``paper.app.create_app(settings, clock=ManualClock())``. The ``/paper/...`` routes
(no signature) expose the ledger, prices, balances and fault switches.
"""
