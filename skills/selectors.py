"""Reads for skills and calling lists (HackSoft style: writes live in services.py)."""

from __future__ import annotations

from pcsms.models import BusinessUnit
from skills.models import CustomField


def custom_field_names(business_unit: BusinessUnit) -> list[str]:
    """Custom field names of the BU's calling lists: merge fields for its templates."""
    return list(
        CustomField.objects.filter(calling_list__business_unit=business_unit)
        .values_list("name", flat=True)
        .distinct()
    )
