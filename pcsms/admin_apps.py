"""Django's admin app with pcsms's site (pcsms/admin_site.py): the index grouped by task.

A module of its own: beside ``PcsmsConfig`` in ``pcsms/apps.py`` Django would find two
app configs for the ``pcsms`` app."""

from django.contrib.admin.apps import AdminConfig


class PcsmsAdminConfig(AdminConfig):
    default_site = "pcsms.admin_site.PcsmsAdminSite"
