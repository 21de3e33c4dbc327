"""The CRM endpoint of a skill's XS settings (SPEC section 2, page 10): writes.

A CRM pushes records to a skill over HTTP (``POST /xs/skills/<id>/records/``, skills/views.py)
with the skill's API key. The records go into the skill's own CRM list ("<skill> (CRM)", made
and attached on first use) through the calling-list import itself: the same normalising
(E.164, time zones, typed custom fields), the same error rows, one upload job per request, so
the admin shows every push like any upload. A CRM sends updates more than new lists, so the
default mode is replace: a record it sends again is updated, not refused.

The key is shown once when issued; only its SHA-256 is stored.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from pcsms.timezones import normalise_zone_name
from skills.importing.mapping import MappingError, build_plan
from skills.importing.readers import FileError
from skills.importing.service import upload_job_preview, upload_job_run
from skills.models import CallingList, Skill, UploadJob

XS_MAX_RECORDS = 10_000  # per request; a CRM with more sends several, or uploads a file
_SCALARS = (str, int, float, bool, type(None))


class XsError(Exception):
    """The request cannot be taken; the message says why (nothing was imported)."""


def xs_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def skill_xs_key_issue(*, skill: Skill) -> str:
    """A new API key for the skill's CRM endpoint (the old one stops working); shown once."""
    key = secrets.token_urlsafe(32)
    skill.xs_api_key_hash = xs_key_hash(key)
    skill.save(update_fields=["xs_api_key_hash", "updated_at"])
    return key


def skill_xs_key_matches(*, skill: Skill, key: str) -> bool:
    return bool(skill.xs_api_key_hash) and hmac.compare_digest(
        skill.xs_api_key_hash, xs_key_hash(key)
    )


def skill_xs_list(*, skill: Skill) -> CallingList:
    """The skill's CRM list, made and attached to the skill on first use."""
    name = f"{skill.name} (CRM)"
    with transaction.atomic():
        calling_list, _ = CallingList.objects.get_or_create(
            business_unit=skill.business_unit,
            name=name,
            defaults={"description": f"Records the CRM sends to skill {skill.name}."},
        )
        skill.calling_lists.add(calling_list)
    return calling_list


def _records_csv(records: list) -> bytes:
    if not isinstance(records, list) or not records:
        raise XsError('"records" must be a non-empty array of objects.')
    if len(records) > XS_MAX_RECORDS:
        raise XsError(
            f"{len(records):,} records in one request; at most {XS_MAX_RECORDS:,} (send the "
            "rest in further requests)."
        )
    header: dict[str, None] = {}  # every key, in the order first seen
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise XsError(f"records[{index}] is not an object.")
        for key, value in record.items():
            if not key.strip():
                raise XsError(f"records[{index}] has an empty field name.")
            if not isinstance(value, _SCALARS):
                raise XsError(
                    f"records[{index}].{key}: a value must be text, a number or true/false."
                )
            header.setdefault(key, None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for record in records:
        writer.writerow(["" if record.get(k) is None else _text(record.get(k)) for k in header])
    return out.getvalue().encode("utf-8")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def skill_xs_records_add(
    *,
    skill: Skill,
    records: list,
    mode: str = UploadJob.Mode.REPLACE,
    default_time_zone: str = "",
) -> UploadJob:
    """Import ``records`` (objects keyed by field name, as a file's header would name them)
    into the skill's CRM list, now; returns the finished upload job (counts, error report).

    Raises XsError for a request that cannot be read, before anything is stored.
    """
    if mode not in UploadJob.Mode.values:
        raise XsError(f'"mode" must be one of: {", ".join(UploadJob.Mode.values)}.')
    if default_time_zone:
        bu = skill.business_unit
        zone = normalise_zone_name(default_time_zone) or (
            default_time_zone
            if bu.custom_time_zones.filter(name=default_time_zone).exists()
            else ""
        )
        if not zone:
            raise XsError(
                f'"default_time_zone": {default_time_zone!r} is not a time zone (an IANA name '
                f"or a custom zone of {bu.name})."
            )
        default_time_zone = zone
    data = _records_csv(records)
    calling_list = skill_xs_list(skill=skill)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    job = UploadJob(
        calling_list=calling_list,
        original_name=f"crm-{stamp}.csv",
        file_format=UploadJob.Format.CSV,
        mode=mode,
        no_zone_policy=(
            UploadJob.NoZonePolicy.DEFAULT if default_time_zone else UploadJob.NoZonePolicy.REJECT
        ),
        default_time_zone=default_time_zone,
        status=UploadJob.Status.PENDING,
    )
    job.file.save(job.original_name, ContentFile(data), save=False)
    job.save()
    try:
        preview = upload_job_preview(job=job)
        existing = dict(calling_list.custom_fields.values_list("name", "field_type"))
        build_plan(preview.header, preview.mapping, existing_types=existing)
    except (FileError, MappingError) as exc:
        UploadJob.objects.filter(pk=job.pk).update(
            status=UploadJob.Status.FAILED, message=str(exc), finished_at=timezone.now()
        )
        raise XsError(str(exc)) from None
    job.mapping = preview.mapping
    job.status = UploadJob.Status.QUEUED
    job.save(update_fields=["mapping", "status"])
    upload_job_run(job_id=job.pk, workers=1)
    job.refresh_from_db()
    return job
