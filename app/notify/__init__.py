"""Notifications: events a trader wants to hear about, delivered through Apprise.

An ``events`` row of a notifiable kind gets a ``notifications`` row in the same transaction
(``app.models``' flush hook, classified by ``kinds.py``); the ``deliver_notifications`` job
(``service.py``) sends what is due, with retries and backoff, and never runs inside execution.
"""
