"""The demo's logins: the superuser ``admin`` and the staff user ``demo-operator``, a member of
the demo business unit with the model permissions of the four apps. Existing passwords are kept
unless a reset is asked for.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission

from pcsms.models import BusinessUnit, Membership
from skills.demo.constants import (
    ADMIN_USERNAME,
    BU_NAME,
    DEMO_APPS,
    DEMO_PASSWORD,
    OPERATOR_USERNAME,
)
from skills.demo.report import SeedReport, _ensure, _validate


def _seed_users(report: SeedReport, bu: BusinessUnit, reset_password: bool):
    User = get_user_model()
    users = []
    for username, superuser in ((ADMIN_USERNAME, True), (OPERATOR_USERNAME, False)):
        user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        created = user is None
        if created:
            user = User(
                **{User.USERNAME_FIELD: username},
                email=f"{username}@example.com",
                is_staff=True,
                is_superuser=superuser,
            )
            user.set_password(DEMO_PASSWORD)
            _validate(user)
            user.save()
            report.count("user")
        reset = reset_password and not created and not user.check_password(DEMO_PASSWORD)
        if reset:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            report.count("password_reset")
        detail = " (password reset)" if reset else ""
        report.part(f'User "{username}"', created, detail)
        users.append(user)
    admin, operator = users
    report.admin_is_superuser = admin.is_superuser
    report.admin_password_is_demo = admin.check_password(DEMO_PASSWORD)
    report.operator_password_is_demo = operator.check_password(DEMO_PASSWORD)

    membership, created = _ensure(
        report,
        Membership,
        {"user": operator, "business_unit": bu},
        {"role": Membership.Role.OPERATOR},
    )
    report.part(f'Membership of "{OPERATOR_USERNAME}" in "{BU_NAME}"', created)

    # Permissions normally exist after migrate; creating them is harmless when they do.
    for label in DEMO_APPS:
        create_permissions(apps.get_app_config(label), verbosity=0)
    missing = list(
        Permission.objects.filter(content_type__app_label__in=DEMO_APPS).exclude(
            pk__in=operator.user_permissions.values("pk")
        )
    )
    if missing:
        operator.user_permissions.add(*missing)
        report.count("permission", len(missing))
    report.part(
        f'Model permissions of "{OPERATOR_USERNAME}"',
        bool(missing),
        f" ({len(missing)} added)" if missing else "",
    )
    return admin, operator
