"""Admin of the skills app, one module per model family.

Django's autodiscovery imports ``skills.admin``; importing each module here registers its
admins (the package form Django documents for models, "Organizing models in a package").
"""

from skills.admin import activity, dashboards, lists, parameters, rules, skill, uploads

__all__ = ["activity", "dashboards", "lists", "parameters", "rules", "skill", "uploads"]
