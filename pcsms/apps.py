from django.apps import AppConfig


class PcsmsConfig(AppConfig):
    """The core app: business units, membership and time zones."""

    name = "pcsms"
    verbose_name = "Business units"
    default_auto_field = "django.db.models.BigAutoField"
