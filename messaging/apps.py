from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: services imports models, which must be loaded first (AppConfig.ready).
        from anymail.signals import tracking

        from messaging.email_services import on_tracking
        from messaging.services import register_handlers

        # Keyword replies and opt-outs on inbound texts, and DNC on carrier error 21610.
        register_handlers()
        # An ESP's verified tracking events: statuses, bounces, complaints, unsubscribes.
        tracking.connect(on_tracking, dispatch_uid="pcsms.email_tracking")
