"""Reads for DNC: who must not be texted."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from pcsms.db import execute_prepared
from pcsms.models import BusinessUnit, OptOutScope

# Entries the recipient caused (or the carrier reported): they bind every skill of the BU.
OPT_OUT_SOURCES = (
    DncEntry.Source.STOP_REPLY,
    DncEntry.Source.PROBABLE_OPT_OUT,
    DncEntry.Source.CARRIER,
    DncEntry.Source.UNSUBSCRIBE,
    DncEntry.Source.COMPLAINT,
)


def _blocking(today=None):
    today = today or timezone.localdate()
    return Q(expires_on__isnull=True) | Q(expires_on__gte=today)


def _numbers_in(numbers: list[str]) -> dict:
    """A lookup on the stored text: the values given here are normalised already (E.164, or an
    address as ``pcsms.addresses`` stores it), the form the column holds."""
    return {"phone_number__in": numbers}


def _entries():
    return DncEntry.objects.all()


def _prepared_numbers(condition: str, params: list, numbers: list[str]) -> set[str]:
    """The blocked numbers among ``numbers`` by one prepared statement (PostgreSQL), the
    numbers as one array parameter: the sender asks twice per slot of up to 50 texts, and the
    ORM's query building plus psycopg's parsing of 50 placeholders cost more CPU than the
    lookup itself."""
    rows = execute_prepared(
        f"SELECT DISTINCT e.phone_number FROM {DncEntry._meta.db_table} e "  # noqa: S608
        f"JOIN {DncGroup._meta.db_table} g ON g.id = e.group_id "
        f"JOIN {BusinessUnit._meta.db_table} b ON b.id = g.business_unit_id "
        f"WHERE {condition} AND g.is_active "
        "AND (e.expires_on IS NULL OR e.expires_on >= %s) AND e.phone_number = ANY(%s::text[])",
        [*params, timezone.localdate(), numbers],
    )
    return {row[0] for row in rows}


# The opt-out scope in SQL (docs/spec.md section 12), with parameters the revoke-all scope,
# today and the registration's STOP group: every opt-out binds when the BU revokes all; else
# only those in the group its STOP replies land in (its own active group, else the default).
# Table names come from the models; every value is a parameter.
_GROUPS = DncGroup._meta.db_table
_IN_SCOPE = (
    "(b.opt_out_scope = %s OR COALESCE(b.revoke_all_from <= %s, false) OR g.id = COALESCE("  # noqa: S608
    f"(SELECT s.id FROM {_GROUPS} s WHERE s.id = %s AND s.is_active "
    "AND s.business_unit_id = b.id), "
    f"(SELECT d.id FROM {_GROUPS} d WHERE d.business_unit_id = b.id AND d.is_default)))"
)


def opt_out_scope_groups(
    *, business_unit: BusinessUnit, stop_group_id: int | None, on=None
) -> list[int] | None:
    """The groups whose opt-outs bind a registration with STOP group ``stop_group_id`` (None:
    it has none of its own) on day ``on``: None when every group of the BU binds (revoke all).

    Mirrors :func:`dnc.services.dnc_stop_group`: the registration's STOP replies land in its own
    group if active, else in the default group, and under the scope "this registration" the
    opt-outs of that group bind it."""
    if business_unit.revokes_all(on or timezone.localdate()):
        return None
    groups = DncGroup.objects.filter(business_unit=business_unit)
    own = (
        groups.filter(pk=stop_group_id, is_active=True).values_list("pk", flat=True).first()
        if stop_group_id is not None
        else None
    )
    if own is None:
        own = groups.filter(is_default=True).values_list("pk", flat=True).first()
    return [] if own is None else [own]


def opted_out_numbers(
    *, business_unit_id: int, numbers: Iterable[str], stop_group_id: int | None
) -> set[str]:
    """The numbers among ``numbers`` whose opt-out binds the texts of a registration with STOP
    group ``stop_group_id`` (None: it has none of its own) in this BU, by the BU's opt-out
    scope: any active group when it revokes all, else the group its STOP replies land in."""
    numbers = list(numbers)
    if not numbers:
        return set()
    if connection.vendor == "postgresql":
        return _prepared_numbers(
            f"g.business_unit_id = %s AND e.source = ANY(%s::text[]) AND {_IN_SCOPE}",
            [
                business_unit_id,
                list(OPT_OUT_SOURCES),
                OptOutScope.BUSINESS_UNIT,
                timezone.localdate(),
                stop_group_id,
            ],
            numbers,
        )
    entries = _entries().filter(
        _blocking(),
        group__business_unit_id=business_unit_id,
        group__is_active=True,
        source__in=OPT_OUT_SOURCES,
        **_numbers_in(numbers),
    )
    business_unit = BusinessUnit.objects.get(pk=business_unit_id)
    scope = opt_out_scope_groups(business_unit=business_unit, stop_group_id=stop_group_id)
    if scope is not None:
        entries = entries.filter(group_id__in=scope)
    return set(entries.values_list("phone_number", flat=True))


def numbers_in_groups(*, group_ids: Iterable[int], numbers: Iterable[str]) -> set[str]:
    """The numbers among ``numbers`` blocked by an unexpired entry of an active group."""
    numbers, group_ids = list(numbers), list(group_ids)
    if not numbers or not group_ids:
        return set()
    if connection.vendor == "postgresql":
        return _prepared_numbers("e.group_id = ANY(%s::bigint[])", [group_ids], numbers)
    return set(
        _entries()
        .filter(_blocking(), group_id__in=group_ids, group__is_active=True, **_numbers_in(numbers))
        .values_list("phone_number", flat=True)
    )
