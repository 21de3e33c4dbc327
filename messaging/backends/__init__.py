"""Pluggable SMS backends, chosen like Django's e-mail backends by a dotted path.

``SMS_BACKEND`` names the default; an SMS registration may name its own. Every backend takes a
batch of :class:`~messaging.backends.base.OutgoingSms` and returns one
:class:`~messaging.backends.base.SendResult` per message, in order.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult

__all__ = ["BaseSmsBackend", "OutgoingSms", "SendOutcome", "SendResult", "get_backend"]


def get_backend(path: str | None = None, **options) -> BaseSmsBackend:
    """An instance of the backend at ``path`` (default: the ``SMS_BACKEND`` setting)."""
    backend_class = import_string(path or settings.SMS_BACKEND)
    return backend_class(**options)
