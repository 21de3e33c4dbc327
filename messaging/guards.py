"""The send-time guards: at the moment a batch is handed over, may each text still go?

The sender runs them under the rows' lock, just before it marks them in flight. Messaging's own
guards come first (window, not-before, the code and its registration, opt-outs); then every guard
another app registered in :data:`messaging.hooks.SEND_GUARDS`. The first verdict for a text wins.
"""

from __future__ import annotations

import datetime as dt

from dnc.selectors import opted_out_numbers
from messaging import hooks
from messaging.hooks import HOLD
from messaging.models import OutboundMessage, WithdrawReason

# How long a held text (its skill paused, its not-before ahead) waits before it is looked at again.
HOLD_SECONDS = 30


def own_guards(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    """Guards messaging knows itself: the window, the code, the registration, opt-outs."""
    verdicts: dict[int, str] = {}
    for message in messages:
        if message.window_ends_at is not None and now >= message.window_ends_at:
            verdicts[message.id] = WithdrawReason.OUTSIDE_WINDOW
        elif message.not_before is not None and now < message.not_before:
            verdicts[message.id] = HOLD
        elif not message.transport_code.can_send or not message.registration.is_active:
            verdicts[message.id] = WithdrawReason.CODE_UNAVAILABLE
    for message_id in opted_out_messages(messages):
        verdicts.setdefault(message_id, WithdrawReason.OPTED_OUT)
    return verdicts


def opted_out_messages(messages: list[OutboundMessage]) -> set[int]:
    """The ids of the texts whose recipient's opt-out binds them, by their BU's opt-out scope:
    one lookup per BU and registration STOP group (docs/spec.md section 12)."""
    by_scope: dict[tuple[int, int | None], set[str]] = {}
    for message in messages:
        scope = (message.business_unit_id, message.registration.stop_dnc_group_id)
        by_scope.setdefault(scope, set()).add(message.to)
    stopped = {
        (bu_id, group_id, number)
        for (bu_id, group_id), numbers in by_scope.items()
        for number in opted_out_numbers(
            business_unit_id=bu_id, numbers=numbers, stop_group_id=group_id
        )
    }
    return {
        m.id
        for m in messages
        if (m.business_unit_id, m.registration.stop_dnc_group_id, m.to) in stopped
    }


def run_guards(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    verdicts = own_guards(messages, now)
    rest = [m for m in messages if m.id not in verdicts]
    for guard in hooks.SEND_GUARDS:
        if not rest:
            break
        for message_id, verdict in guard(rest, now).items():
            verdicts.setdefault(message_id, verdict)
        rest = [m for m in rest if m.id not in verdicts]
    return verdicts
