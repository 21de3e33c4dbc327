"""A skill's XS settings (docs/spec.md section 15): the CRM endpoint and the webhook.

A CRM pushes records to a skill over HTTP (``POST /xs/skills/<id>/records/``, skills/views.py)
with the skill's API key. The records go into the skill's own CRM list ("<skill> (CRM)", made
and attached on first use) through the calling-list import itself: the same normalising
(E.164, time zones, typed custom fields), the same error rows, one upload job per request, so
the admin shows every push like any upload. A CRM sends updates more than new lists, so the
default mode is replace: a record it sends again is updated, not refused. A request that cannot
be taken (unreadable, too large, or refused by the import before any row) stores nothing: no
upload job, no list, no record.

The key is shown once when issued; only its SHA-256 is stored.

The other way, the webhook tells the CRM each record the skill finalizes (with its outcome)
and asks for more records when fewer than the refill threshold are waiting: events are written
where records are finalized, and ``xs_deliver`` (a django-q2 schedule, every minute) posts them
in batches, signed, retrying until the CRM answers 2xx.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import secrets
import urllib.error
import urllib.request

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from pcsms.rows import FileError
from pcsms.timezones import normalise_zone_name
from skills.importing.mapping import MappingError, build_plan
from skills.importing.service import upload_job_preview, upload_job_run
from skills.models import CallingList, Record, Skill, UploadJob, XsEvent
from skills.queries import active_list_ids, textable_records

logger = logging.getLogger(__name__)

XS_MAX_RECORDS = 10_000  # per request; a CRM with more sends several, or uploads a file
# Per request, checked before the body is read: XS_MAX_RECORDS of about 1 KB each. The endpoint's
# own, so that a DATA_UPLOAD_MAX_MEMORY_SIZE raised for the admin's forms does not let a CRM
# have a larger body read into memory and parsed (the lower of the two applies).
XS_MAX_BODY_BYTES = 10 * 1024 * 1024
_SCALARS = (str, int, float, bool, type(None))


class XsError(Exception):
    """The request cannot be taken; the message says why (nothing was stored)."""

    status = 400


class XsTooLarge(XsError):
    """More than one request may carry (records or bytes): the CRM should split it."""

    status = 413


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def xs_body_parse(body: bytes) -> dict:
    """The request's JSON object; XsError for anything else."""
    try:
        # Integers kept as written: records become text anyway, a long numeric id keeps every
        # digit, and one of thousands of digits is no longer refused by int() (a ValueError).
        data = json.loads(body or b"null", parse_int=str, parse_constant=_no_constant)
    except RecursionError:  # "[[[[..." nested past the interpreter's limit
        raise XsError("The body is not JSON: it is nested too deeply.") from None
    except ValueError as exc:  # not JSON, not UTF-8, or NaN / Infinity
        raise XsError(f"The body is not JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise XsError('The body must be an object with "records".')
    return data


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
        raise XsTooLarge(
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
            # The import would refuse the whole CSV as a binary file; say where it is instead.
            if "\0" in key or (isinstance(value, str) and "\0" in value):
                raise XsError(f"records[{index}].{key}: a NUL character is not text.")
            header.setdefault(key, None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for record in records:
        writer.writerow(["" if record.get(k) is None else _text(record.get(k)) for k in header])
    try:
        return out.getvalue().encode("utf-8")
    except UnicodeEncodeError:  # JSON may escape half a surrogate pair ("\ud800"): not text
        raise XsError(
            "The records hold text that is not Unicode (an unpaired surrogate such as \\ud800)."
        ) from None


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
    if not isinstance(default_time_zone, str):
        raise XsError('"default_time_zone" must be text: an IANA name or a custom zone.')
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
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    # The list, the job and its file are kept only once the import can read the request: a
    # refused one (no phone column, say) rolls back and leaves the skill's lists as they were.
    with transaction.atomic():
        calling_list = skill_xs_list(skill=skill)
        job = UploadJob(
            calling_list=calling_list,
            original_name=f"crm-{stamp}.csv",
            file_format=UploadJob.Format.CSV,
            mode=mode,
            no_zone_policy=(
                UploadJob.NoZonePolicy.DEFAULT
                if default_time_zone
                else UploadJob.NoZonePolicy.REJECT
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
            job.file.delete(save=False)
            raise XsError(str(exc)) from None
        job.mapping = preview.mapping
        job.status = UploadJob.Status.QUEUED
        job.save(update_fields=["mapping", "status"])
    upload_job_run(job_id=job.pk, workers=1)
    job.refresh_from_db()
    return job


# --- The XS webhook: finalized records and refill requests, told to the CRM ---------------------

XS_BATCH = 500  # events in one call
XS_MAX_ATTEMPTS = 12  # then given up: about a day of retries
XS_TIMEOUT_SECONDS = 10
REFILL_QUIET = dt.timedelta(minutes=10)  # one refill request at most this often


def xs_records_finalized(
    *, skill: Skill, record_ids: list[int], reason: str, now: dt.datetime | None = None
) -> int:
    """Events for records the skill has just finalized (in the caller's transaction).

    Nothing for a skill without a webhook: the finalizing paths (receipts, sweeps, opt-outs)
    call this on every finalization, so that case costs no query.
    """
    if not skill.xs_webhook_url or not record_ids:
        return 0
    now = now or timezone.now()
    stamp = now.isoformat(timespec="seconds")
    rows = Record.objects.filter(pk__in=record_ids).values_list("external_id", "calling_list__name")
    events = [
        XsEvent(
            skill=skill,
            kind=XsEvent.Kind.FINALIZED,
            payload={
                "external_id": external_id,
                "calling_list": list_name,
                "outcome": reason,
                "finalized_at": stamp,
            },
            next_attempt_at=now,
        )
        for external_id, list_name in rows
    ]
    XsEvent.objects.bulk_create(events)
    return len(events)


def xs_refill_check(*, skill: Skill, now: dt.datetime | None = None) -> bool:
    """Ask the CRM for more records when the running skill has fewer waiting than its refill
    threshold (at most once every REFILL_QUIET); True when asked."""
    threshold = skill.xs_refill_threshold or 0
    if not skill.xs_webhook_url or threshold <= 0 or skill.state != Skill.State.RUNNING:
        return False
    now = now or timezone.now()
    if XsEvent.objects.filter(
        skill=skill, kind=XsEvent.Kind.REFILL, created_at__gte=now - REFILL_QUIET
    ).exists():
        return False
    open_records = Record.objects.filter(calling_list_id__in=active_list_ids(skill), is_final=False)
    # Counted up to the threshold only: a large list answers at once.
    waiting = textable_records(skill, open_records).values("pk")[:threshold].count()
    if waiting >= threshold:
        return False
    XsEvent.objects.create(
        skill=skill,
        kind=XsEvent.Kind.REFILL,
        payload={
            "waiting": waiting,
            "threshold": threshold,
            "at": now.isoformat(timespec="seconds"),
        },
        next_attempt_at=now,
    )
    return True


def xs_signature(skill: Skill, body: bytes) -> str:
    """HMAC-SHA256 of the body, keyed with the SHA-256 (hex) of the skill's API key: the CRM,
    which holds the key, can check it; pcsms stores only that hash."""
    return "sha256=" + hmac.new(skill.xs_api_key_hash.encode(), body, hashlib.sha256).hexdigest()


def xs_deliver(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Send the due events, a call per skill with up to XS_BATCH of them; returns counts."""
    now = now or timezone.now()
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    due = (
        XsEvent.objects.filter(status=XsEvent.Status.PENDING, next_attempt_at__lte=now)
        .values_list("skill_id", flat=True)
        .distinct()
    )
    for skill_id in list(due):
        with transaction.atomic():
            events = list(
                XsEvent.objects.select_for_update(skip_locked=True)
                .filter(skill_id=skill_id, status=XsEvent.Status.PENDING, next_attempt_at__lte=now)
                .select_related("skill")
                .order_by("id")[:XS_BATCH]
            )
            if not events:
                continue
            skill = events[0].skill
            error = _post(skill, events) if skill.xs_webhook_url else "the skill has no webhook URL"
            _settle(events, error, now, counts)
    return counts


def _post(skill: Skill, events: list[XsEvent]) -> str:
    """POST the events; "" when the CRM answered 2xx, else why not."""
    body = json.dumps(
        {
            "skill": skill.name,
            "skill_id": skill.pk,
            "business_unit": skill.business_unit.name,
            "events": [{"id": e.pk, "type": e.kind, **e.payload} for e in events],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL the model validated)
        skill.xs_webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "pcsms-xs-webhook",
            "X-Pcsms-Signature": xs_signature(skill, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=XS_TIMEOUT_SECONDS) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer: {getattr(exc, 'reason', exc)}"
    return "" if 200 <= status < 300 else f"HTTP {status}"


def _settle(events: list[XsEvent], error: str, now: dt.datetime, counts: dict) -> None:
    ids = [e.pk for e in events]
    if not error:
        XsEvent.objects.filter(pk__in=ids).update(
            status=XsEvent.Status.DELIVERED, delivered_at=now, last_error=""
        )
        counts["delivered"] += len(ids)
        return
    for event in events:
        event.attempts += 1
        event.last_error = error[:500]
        if event.attempts >= XS_MAX_ATTEMPTS:
            event.status = XsEvent.Status.FAILED
            counts["failed"] += 1
        else:
            # 1, 2, 4 ... minutes, at most 4 hours between tries.
            wait = min(2 ** (event.attempts - 1), 240)
            event.next_attempt_at = now + dt.timedelta(minutes=wait)
            counts["retry"] += 1
    XsEvent.objects.bulk_update(events, ["attempts", "last_error", "status", "next_attempt_at"])
    logger.warning("XS webhook of skill %s: %s (%d events)", events[0].skill_id, error, len(events))
