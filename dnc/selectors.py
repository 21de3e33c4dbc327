"""Reads for DNC: who must not be texted."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from dnc.models import DncEntry

# Entries the recipient caused (or the carrier reported): they bind every skill of the BU.
OPT_OUT_SOURCES = (
    DncEntry.Source.STOP_REPLY,
    DncEntry.Source.PROBABLE_OPT_OUT,
    DncEntry.Source.CARRIER,
)


def _blocking(today=None):
    today = today or timezone.localdate()
    return Q(expires_on__isnull=True) | Q(expires_on__gte=today)


def opted_out_numbers(*, business_unit_id: int, numbers: Iterable[str]) -> set[str]:
    """The numbers among ``numbers`` that opted out of this BU (in any active group)."""
    numbers = list(numbers)
    if not numbers:
        return set()
    return {
        str(n)
        for n in DncEntry.objects.filter(
            _blocking(),
            group__business_unit_id=business_unit_id,
            group__is_active=True,
            source__in=OPT_OUT_SOURCES,
            phone_number__in=numbers,
        ).values_list("phone_number", flat=True)
    }


def numbers_in_groups(*, group_ids: Iterable[int], numbers: Iterable[str]) -> set[str]:
    """The numbers among ``numbers`` blocked by an unexpired entry of an active group."""
    numbers, group_ids = list(numbers), list(group_ids)
    if not numbers or not group_ids:
        return set()
    return {
        str(n)
        for n in DncEntry.objects.filter(
            _blocking(), group_id__in=group_ids, group__is_active=True, phone_number__in=numbers
        ).values_list("phone_number", flat=True)
    }
