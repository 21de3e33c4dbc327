"""The admin's index and sidebar grouped the way the work goes, not by app.

A contact-centre administrator looks for "Lists" or "Compliance", not for the Python app a
model lives in. :class:`PcsmsAdminSite` regroups the models Django would list per app into
the sections of ``SECTIONS`` (docs/architecture.md, "Admin"), and leaves out the models only
edited inline on another page (their pages still answer, for links from those pages). An app's
own page (``/admin/skills/``) keeps Django's list of that app.
"""

from __future__ import annotations

from django.contrib import admin

# (section, the models in it in their order), as "app_label.ModelName".
SECTIONS: list[tuple[str, list[str]]] = [
    ("Campaigns & skills", ["skills.Campaign", "skills.Skill", "skills.SkillForecast"]),
    ("Lists", ["skills.CallingList", "skills.Record", "skills.UploadJob", "skills.CustomField"]),
    ("Templates", ["messaging.MessageTemplate"]),
    (
        "Compliance",
        [
            "dnc.DncGroup",
            "dnc.DncEntry",
            "pcsms.KeywordSet",
            "skills.SendingWindowPreset",
            "skills.StateRuleOverride",
            "skills.Blackout",
            "skills.RuleHold",
        ],
    ),
    ("Sending", ["messaging.TransportCode", "messaging.SmsRegistration"]),
    (
        "Activity",
        [
            "messaging.OutboundMessage",
            "messaging.InboundMessage",
            "messaging.MessageEvent",
            "skills.Attempt",
            "skills.XsEvent",
        ],
    ),
    (
        "Workers",
        [
            "messaging.SenderProcess",
            "messaging.SenderLease",
            "django_q.OrmQ",
            "django_q.Schedule",
            "django_q.Success",
            "django_q.Failure",
        ],
    ),
    (
        "Business units & users",
        [
            "pcsms.BusinessUnit",
            "pcsms.Membership",
            "pcsms.CustomTimeZone",
            "auth.User",
            "auth.Group",
            "axes.AccessAttempt",
            "axes.AccessFailureLog",
            "axes.AccessLog",
        ],
    ),
]

# Edited only as rows of another page (a skill's parameter pages, a preset's holidays, a
# record's numbers) or kept by the system for the dashboards: not listed on their own.
INLINE_ONLY = {
    "skills.CadenceStep",
    "skills.FilterCondition",
    "skills.SortCriterion",
    "skills.ScheduleDay",
    "skills.TimeZoneBound",
    "skills.CpaRule",
    "skills.PresetHoliday",
    "skills.Destination",
    "skills.RecordTally",
}

OTHER = "Other"  # a model no section names yet: listed rather than lost


class PcsmsAdminSite(admin.AdminSite):
    site_header = "pcsms administration"
    site_title = "pcsms"
    index_title = "Proactive agentless SMS"
    # The home page: the index with the apps' panels above the sections. The apps above pcsms
    # add what they show (skills/admin/home.py) through ``home_builders``, so this module
    # imports none of them.
    index_template = "admin/home.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.home_builders = []  # callables(request) -> extra context for the home page

    def index(self, request, extra_context=None):
        context = {}
        for build in self.home_builders:
            context.update(build(request))
        return super().index(request, {**context, **(extra_context or {})})

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        return task_sections(apps)


def task_sections(apps: list[dict]) -> list[dict]:
    """Django's per-app list (only what the user may see) regrouped into ``SECTIONS``."""
    by_label = {}
    for app in apps:
        for model in app["models"]:
            by_label[f"{app['app_label']}.{model['object_name']}"] = model
    placed = {label for _name, labels in SECTIONS for label in labels} | INLINE_ONLY
    sections = [
        (name, [by_label[label] for label in labels if label in by_label])
        for name, labels in SECTIONS
    ]
    rest = [model for label, model in by_label.items() if label not in placed]
    if rest:
        sections.append((OTHER, sorted(rest, key=lambda m: m["name"])))
    return [
        {
            "name": name,
            "app_label": "section-" + "-".join(name.lower().replace("&", "").split()),
            "app_url": models[0]["admin_url"],
            "has_module_perms": True,
            "models": models,
        }
        for name, models in sections
        if models
    ]
