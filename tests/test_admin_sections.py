"""The admin's index by task: sections in the order the work goes, nothing lost, and the
models only edited inline on another page not listed on their own."""

from __future__ import annotations

import re

from django.contrib import admin
from django.urls import reverse

from pcsms.admin_site import INLINE_ONLY, SECTIONS

NAMES = [name for name, _labels in SECTIONS]


def _captions(html: str) -> list[str]:
    return re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', html)


def test_every_model_has_its_place_and_every_place_a_model():
    registered = {m._meta.label for m in admin.site._registry}
    placed = [label for _name, labels in SECTIONS for label in labels]
    assert len(placed) == len(set(placed)), "a model in two sections"
    assert sorted(registered - set(placed) - INLINE_ONLY) == []  # none falls to "Other"
    assert sorted((set(placed) | INLINE_ONLY) - registered) == []  # no stale names


def test_the_index_reads_by_task(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert _captions(page) == [n.replace("&", "&amp;") for n in NAMES]
    for listed in ("Skills", "Calling lists", "DNC groups", "Transport codes", "Sender processes"):
        assert f">{listed}</a>" in page
    for hidden in ("Cadence steps", "Filter conditions", "Time zone bounds", "Record tallies"):
        assert f">{hidden}</a>" not in page
    # Their pages still answer: the skill's page links to them.
    assert admin_client.get(reverse("admin:skills_cadencestep_changelist")).status_code == 200
    # An app's own page keeps Django's list of that app.
    app = admin_client.get(reverse("admin:app_list", args=["skills"])).content.decode()
    assert ">Cadence steps</a>" in app


def test_a_members_index_has_only_what_they_may_see(client, staff_member):
    client.force_login(staff_member)
    page = client.get(reverse("admin:index")).content.decode()
    captions = _captions(page)
    assert "Campaigns &amp; skills" in captions and "Compliance" in captions
    assert ">Access attempts</a>" not in page  # superusers' only
    assert captions == [c for c in (n.replace("&", "&amp;") for n in NAMES) if c in captions]
