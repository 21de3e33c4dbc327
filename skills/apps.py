from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "skills"
    verbose_name = "Skills and calling lists"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messaging.models import TEMPLATE_FIELD_PROVIDERS
        from messaging.sender import SEND_GUARDS
        from skills import dnc_hooks  # opt-outs: contributing DNC groups, record finalized
        from skills.guards import skill_guard
        from skills.selectors import custom_field_names

        # Templates may use the custom fields of the BU's calling lists.
        if custom_field_names not in TEMPLATE_FIELD_PROVIDERS:
            TEMPLATE_FIELD_PROVIDERS.append(custom_field_names)
        # The sender asks skills, at the moment of sending, whether each text may still go.
        if skill_guard not in SEND_GUARDS:
            SEND_GUARDS.append(skill_guard)

        from messaging.services import STATUS_LISTENERS
        from skills.outcomes import on_message_status

        # Receipts and failures become record outcomes (finalize / retry / next number).
        if on_message_status not in STATUS_LISTENERS:
            STATUS_LISTENERS.append(on_message_status)
        dnc_hooks.register()
