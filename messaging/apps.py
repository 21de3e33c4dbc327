from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messaging.services import register_handlers

        # Keyword replies and opt-outs on inbound texts, DNC on carrier error 21610, and the
        # withdrawal of queued texts on every opt-out.
        register_handlers()
