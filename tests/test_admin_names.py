"""The admin's names read as English: every model's plural on the index is a word a person
would write (Django's default adds an "s", which gave "sender processs")."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.urls import reverse

OUR_APPS = ("pcsms", "dnc", "messaging", "skills")
# What a default "+s" makes of English: "processs", "boxs", "matchs"; "of a business units".
MALFORMED = re.compile(r"(sss|xs|chs|shs)\b|\bof an? \w+ \w+s\b")


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in OUR_APPS],
    ids=lambda m: m._meta.label,
)
def test_every_plural_reads_well(model):
    plural = str(model._meta.verbose_name_plural)
    assert not MALFORMED.search(plural), plural


def test_the_index_lists_them_by_their_plurals(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "Sender processes" in page and "State rules of business units" in page
    assert "processs" not in page and "of a business units" not in page
