"""The guided set-up page (Skills -> "Set up a skill"): the steps of skills.setup_guide for one
business unit of the user, each with a link to the admin page that does it when the user may
open that page (docs/setup-guide.md). Served by SkillAdmin.setup_guide_view.

The business unit comes from the query string (``?business_unit=<id>``) and must be one of the
user's: any other id, another tenant's above all, is a 404, the same answer as for an id that
does not exist. A user of one unit sees it at once; a user of several, or a superuser, picks one.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.admin.exceptions import NotRegistered
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse

from pcsms.models import BusinessUnit, visible_to
from skills.models import Skill, UploadJob
from skills.setup_guide import SetupStep, Status, setup_steps

START_ACTION = "start_skills"  # SkillAdmin's action, which the start button posts to


def setup_guide_page(model_admin, request) -> TemplateResponse:
    """The page for ``model_admin`` (the SkillAdmin): reads only, so GET alone."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if not (
        model_admin.has_view_or_change_permission(request)
        or model_admin.has_add_permission(request)
    ):
        raise PermissionDenied
    units = list(visible_to(BusinessUnit.objects.order_by("name"), request.user))
    chosen = _chosen(request, units)
    steps = setup_steps(chosen) if chosen is not None else []
    site = model_admin.admin_site
    title = f"Set up a skill: {chosen}" if chosen is not None else "Set up a skill"
    context = {
        **site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "units": units,
        "chosen": chosen,
        "steps": [_shown(site, request, step, steps) for step in steps],
        "done": sum(step.status == Status.DONE for step in steps),
    }
    return TemplateResponse(request, "admin/skills/setup_guide.html", context)


def _chosen(request, units: list[BusinessUnit]) -> BusinessUnit | None:
    """The unit asked for, if it is one of ``units`` (else 404); the only one; or none yet."""
    asked = request.GET.get("business_unit", "").strip()
    if asked:
        chosen = next((unit for unit in units if str(unit.pk) == asked), None)
        if chosen is None:
            raise Http404("No such business unit among yours.")
        return chosen
    return units[0] if len(units) == 1 else None


def _admin_of(site, model):
    try:
        return site.get_model_admin(model)
    except NotRegistered:
        return None


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _link(site, request, step: SetupStep) -> tuple[str, str] | None:
    """(URL, text) of the page that does the step, if the user may open it."""
    model_admin = _admin_of(site, step.model) if step.model is not None else None
    if model_admin is None:
        return None
    name = step.model._meta.verbose_name
    if step.obj is not None:
        if model_admin.has_change_permission(request, step.obj):
            verb = "Change"
        elif model_admin.has_view_permission(request, step.obj):
            verb = "View"
        else:
            return None
        return _url(step.model, "change", step.obj.pk), f"{verb} the {name}"
    if not model_admin.has_add_permission(request):
        return None
    url = _url(step.model, "add")
    if step.initial:
        url += "?" + urlencode(step.initial)
    text = "Upload a file into the list" if step.model is UploadJob else f"Add a {name}"
    return url, text


def _start(site, request, step: SetupStep, steps: list[SetupStep]) -> dict | None:
    """The start button of a stopped skill whose set-up is complete, for a user who may start
    it: a form posting the skill list's own start action (its checks and messages)."""
    skill = step.obj
    if step.key != "start" or step.status != Status.MISSING or not isinstance(skill, Skill):
        return None
    if any(s.status != Status.DONE for s in steps if s.key != "start"):
        return None
    model_admin = _admin_of(site, Skill)
    if model_admin is None or not model_admin.has_change_permission(request, skill):
        return None
    if START_ACTION not in model_admin.get_actions(request):
        return None
    return {"url": _url(Skill, "changelist"), "action": START_ACTION, "pk": skill.pk}


def _shown(site, request, step: SetupStep, steps: list[SetupStep]) -> dict:
    link = _link(site, request, step)
    return {
        "number": step.number,
        "key": step.key,
        "title": step.title,
        "status": step.status.value,
        "status_label": step.status.label,
        "found": step.found,
        "problems": step.problems,
        "is_next": step.is_next,
        "url": link[0] if link else "",
        "link_text": link[1] if link else "",
        "no_access": step.model is not None and link is None,
        "start": _start(site, request, step, steps),
    }
