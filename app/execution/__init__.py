"""Execution: one signal becomes orders on the exchange, each placed exactly once.

``service`` is the entry point (claim the signal in ``claims``, take its turn in ``turns``,
reconcile, act, record the ``result``); the actions are ``entries``, ``closes``, ``reverse``,
``levels`` (a stand-alone tp/sl) and ``targets`` (a cancel signal), with ``fanout`` and
``parents`` for a signal sent to several accounts. Pure code decides: ``planning`` (signal ->
order intents), ``sizing`` and ``funds``, ``ladder``, ``breakeven`` and ``guards``. Orders reach
the exchange through ``placement`` (write, send, record) and ``venue`` (which endpoint, how to
look an order up), are cancelled by ``cancels`` and followed while resting by ``resting``;
``journal`` writes rows and events, ``positions`` turns fills into positions, ``brackets`` and
``protection`` keep every position covered, ``leverage`` sets a USD-M symbol up, ``quality``
measures what a signal paid, ``book`` holds the database look-ups and ``context`` what a
process hands in (settings, client, sessions, Redis).
"""
