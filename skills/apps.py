from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "skills"
    verbose_name = "Skills and calling lists"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module top: they import models, which the app registry must have
        # loaded first (Django's rule for AppConfig.ready).
        from dnc.services import OPT_OUT_LISTENERS, RETENTION_RULES
        from messaging import hooks
        from skills.dnc_hooks import skill_opt_out, stop_retention
        from skills.guards import skill_guard
        from skills.outcomes import on_message_status
        from skills.selectors import custom_field_names

        # Templates may use the custom fields of the BU's calling lists.
        hooks.register(hooks.TEMPLATE_FIELD_PROVIDERS, custom_field_names)
        # The sender asks skills, at the moment of sending, whether each text may still go.
        hooks.register(hooks.SEND_GUARDS, skill_guard)
        # Receipts and failures become record outcomes (finalize / retry / next number).
        hooks.register(hooks.STATUS_LISTENERS, on_message_status)
        # Opt-outs: the skill's contributing DNC groups, and the record finalized.
        hooks.register(OPT_OUT_LISTENERS, skill_opt_out)
        # A state's retention of an opt-out (Virginia's 10 years) comes from its state rule.
        hooks.register(RETENTION_RULES, stop_retention)
