"""Writes for message templates (HackSoft style: keyword-only, typed, ``<entity>_<action>``).

A template is *active* when skills may send it. Two rules guard that flag:

- only a template whose body passes validation against its BU's fields can be activated;
- a template that a running skill sends cannot be deactivated (the skill would go on sending a
  text the administrator meant to withdraw, or stop mid-list): stop the skill first.

The check and the write happen under a lock on the template row, so a skill that starts at the
same moment (and locks the template to check it is active) cannot slip between them.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from messaging import templating
from messaging.models import MessageTemplate, template_fields_for
from messaging.selectors import template_running_skill_names
from pcsms.models import visible_to


def _quoted(names: list[str]) -> str:
    quoted = [f'"{name}"' for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def template_in_use_message(*, template: MessageTemplate, skill_names: list[str]) -> str:
    """Why ``template`` cannot be deactivated, naming the running skills that send it."""
    noun = "skill" if len(skill_names) == 1 else "skills"
    them = "it" if len(skill_names) == 1 else "them"
    return (
        f'Template "{template.name}" cannot be deactivated: the running {noun} '
        f"{_quoted(skill_names)} send{'s' if len(skill_names) == 1 else ''} it. "
        f"Stop the {noun} or give {them} another template first."
    )


def _locked(template: MessageTemplate) -> MessageTemplate:
    """The template row, locked until the end of the caller's transaction."""
    return MessageTemplate.objects.select_for_update().get(pk=template.pk)


def template_check_deactivation(*, template: MessageTemplate) -> None:
    """Raise ``ValidationError`` if a running skill sends ``template``.

    Called by the admin form when ``is_active`` is unticked: inside the admin's transaction the
    lock taken here is held until the form is saved.
    """
    with transaction.atomic():
        _locked(template)
        running = template_running_skill_names(template)
    if running:
        raise ValidationError(
            template_in_use_message(template=template, skill_names=running),
            code="template_in_use",
        )


def _check_user(template: MessageTemplate, user) -> None:
    if not visible_to(MessageTemplate.objects.filter(pk=template.pk), user).exists():
        raise PermissionDenied("You are not a member of this template's business unit.")


def template_activate(*, template: MessageTemplate, user) -> bool:
    """Make ``template`` available to skills; False when it already was.

    Refused (``ValidationError``) when the body no longer validates, e.g. it names a custom
    field that no calling list of the BU has any more.
    """
    _check_user(template, user)
    with transaction.atomic():
        current = _locked(template)
        if current.is_active:
            template.is_active = True
            return False
        problems = templating.validate(
            current.body, template_fields_for(current.business_unit) or templating.SYSTEM_FIELDS
        )
        if problems:
            raise ValidationError(
                f'Template "{current.name}" cannot be activated: {problems[0].message}',
                code="template_invalid",
            )
        current.is_active = True
        current.save(update_fields=["is_active", "updated_at"])
    template.is_active = True
    return True


def template_deactivate(*, template: MessageTemplate, user) -> bool:
    """Withdraw ``template`` from skills; False when it already was inactive.

    Refused (``ValidationError`` naming the skills) while a running skill sends it.
    """
    _check_user(template, user)
    with transaction.atomic():
        current = _locked(template)
        if not current.is_active:
            template.is_active = False
            return False
        running = template_running_skill_names(current)
        if running:
            raise ValidationError(
                template_in_use_message(template=current, skill_names=running),
                code="template_in_use",
            )
        current.is_active = False
        current.save(update_fields=["is_active", "updated_at"])
    template.is_active = False
    return True
