"""Every registry through which the apps above messaging take part in its work.

``messaging`` never imports ``skills``: ``skills`` appends its functions here from
``SkillsConfig.ready`` (the way ``django.contrib.auth.signals`` declares signals others connect
to). Each registry's contract is written beside it. Nothing here imports a model, so any module of
messaging may import this one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: models import this module for TEMPLATE_FIELD_PROVIDERS
    from messaging.models import OutboundMessage
    from pcsms.models import BusinessUnit

# Called after a status change with (message=, status=, error_code=): how ``skills`` learns of
# receipts and failures and ``messaging`` itself turns the carrier's "unsubscribed" error into an
# opt-out. A report with an error code runs them inside the update's transaction (the message row
# locked); a plain "sent"/"delivered" runs them right after the update is committed, so a
# listener's writes must be derivable again from the message's state if the process dies in
# between (the skills' sweep does that for record outcomes).
StatusListener = Callable[..., None]
STATUS_LISTENERS: list[StatusListener] = []

# Called with (inbound=) for the first delivery of each carrier id of an inbound text, inside the
# transaction that stored it: keyword classification, opt-out, opt-in, HELP. A handler may set
# ``inbound.reply_text`` for the webhook to answer with.
InboundHandler = Callable[..., None]
INBOUND_HANDLERS: list[InboundHandler] = []

# A guard takes the locked rows about to be sent and returns {message id: verdict}; a verdict
# is a WithdrawReason (withdraw it, recording why) or HOLD (keep it queued and look again
# later, e.g. its skill is paused). ``skills`` appends its own (skill running, its scrubbed DNC
# groups); the sender runs its own guards first (see ``messaging.guards``).
HOLD = "hold"
Guard = Callable[["list[OutboundMessage]", dt.datetime], "dict[int, str]"]
SEND_GUARDS: list[Guard] = []

# Apps that define merge fields beyond the system ones register a function here: it takes a
# business unit and returns field names (``skills`` adds its calling lists' custom fields).
TemplateFieldProvider = Callable[["BusinessUnit"], Iterable[str]]
TEMPLATE_FIELD_PROVIDERS: list[TemplateFieldProvider] = []


def register(registry: list, hook) -> None:
    """Append ``hook`` once: ``ready()`` may run more than once (tests, reloads)."""
    if hook not in registry:
        registry.append(hook)
