"""Admin of the skills app, one module per model family.

Django's autodiscovery imports ``skills.admin``; importing each module here registers its
admins (the package form Django documents for models, "Organizing models in a package").
"""

from django.contrib import admin

from skills.admin import activity, dashboards, home, lists, parameters, rules, skill, uploads

__all__ = ["activity", "dashboards", "home", "lists", "parameters", "rules", "skill", "uploads"]

# The home page's panels (pcsms/admin_site.py); a plain AdminSite (a project of its own) has
# no home page to add them to.
if hasattr(admin.site, "home_builders"):
    admin.site.home_builders.append(home.home_context)
