"""The skills' own URLs outside the admin: the CRM endpoint of the XS settings (skills/xs.py).

Thin: authenticate, read the JSON, call the service, answer JSON. A wrong or missing key and an
unknown skill get the same 401, so the endpoint does not tell which skills exist. The body is
read only after the key is checked, and only when its Content-Length is within the limit (413).
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from skills.models import Skill
from skills.selectors import upload_job_result
from skills.xs import (
    XS_MAX_BODY_BYTES,
    XsError,
    skill_xs_key_matches,
    skill_xs_records_add,
    xs_body_parse,
)

_HEADER_ROWS = 2  # the CSV made of the records: its header is row 1, records[0] is row 2


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body_limit() -> int:
    """XS_MAX_BODY_BYTES, or the site's DATA_UPLOAD_MAX_MEMORY_SIZE when that is lower."""
    site = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return XS_MAX_BODY_BYTES if site is None else min(XS_MAX_BODY_BYTES, site)


@csrf_exempt  # a server-to-server call, authenticated by its key, not a browser form
@require_POST
def xs_records(request, skill_id: int):
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    skill = Skill.objects.select_related("business_unit").filter(pk=skill_id).first()
    if (
        scheme.lower() != "bearer"
        or skill is None
        or not skill_xs_key_matches(skill=skill, key=key.strip())
    ):
        return _error(401, "Unknown skill or wrong API key (send Authorization: Bearer <key>).")
    if not skill.xs_enabled:
        return _error(403, f'The CRM endpoint of skill "{skill.name}" is switched off.')
    # Refused unread: over the site's DATA_UPLOAD_MAX_MEMORY_SIZE, request.body would raise
    # RequestDataTooBig (Django's generic 400 page); over ours, a higher setting would let it in.
    try:
        size, limit = int(request.META.get("CONTENT_LENGTH") or 0), _body_limit()
    except ValueError:  # request.body would fail the same way (a 500)
        return _error(400, "The Content-Length header is not a number.")
    if size > limit:
        return _error(
            413,
            f"The body is {size:,} bytes; at most {limit:,} in one request (send the records "
            "in several).",
        )
    try:
        body = xs_body_parse(request.body)
        job = skill_xs_records_add(
            skill=skill,
            records=body.get("records"),
            mode=body.get("mode") or "replace",
            default_time_zone=body.get("default_time_zone") or "",
        )
    except XsError as exc:
        return _error(exc.status, str(exc))
    result = upload_job_result(job)
    for entry in result["errors"] + result["warnings"]:  # the record's place in the request
        entry["index"] = entry.pop("row") - _HEADER_ROWS
    return JsonResponse(
        {**result, "skill_state": skill.state},
        status=200 if job.status == "completed" else 422,
    )
