from django.apps import AppConfig


class DncConfig(AppConfig):
    name = "dnc"
    verbose_name = "Do not contact"
    default_auto_field = "django.db.models.BigAutoField"
