"""How seeding creates and reports: an object is looked up by its natural key and, only when
missing, built, validated as the admin would validate it and saved, never updated; the report
says which parts were created and which were already present, counts what was added and tells
whether the demo logins still have the demo password.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import models

from skills.demo.constants import (
    ADMIN_USERNAME,
    BU_NAME,
    DEMO_PASSWORD,
    EMAIL_SKILL_NAME,
    LIST_NAME,
    OPERATOR_USERNAME,
    SKILL_NAME,
)


class DemoDataError(Exception):
    """The demo data did not pass the models' validation (a bug in the demo or a model)."""


@dataclass
class SeedReport:
    lines: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    records: int = 0
    admin_password_is_demo: bool = False
    operator_password_is_demo: bool = False
    admin_is_superuser: bool = True

    def part(self, label: str, created: bool, detail: str = "") -> None:
        state = "created" if created else "already present"
        self.lines.append(f"{label}: {state}{detail}")

    def count(self, key: str, n: int = 1) -> None:
        if n:
            self.created[key] = self.created.get(key, 0) + n

    @property
    def changed(self) -> bool:
        return bool(self.created)

    def as_dict(self) -> dict:
        return {
            "business_unit": BU_NAME,
            "calling_list": LIST_NAME,
            "records": self.records,
            "skill": SKILL_NAME,
            "email_skill": EMAIL_SKILL_NAME,
            "created": self.created,
            "changed": self.changed,
            "admin": {
                "username": ADMIN_USERNAME,
                "password": DEMO_PASSWORD if self.admin_password_is_demo else None,
                "is_superuser": self.admin_is_superuser,
            },
            "operator": {
                "username": OPERATOR_USERNAME,
                "password": DEMO_PASSWORD if self.operator_password_is_demo else None,
            },
            "steps": self.lines,
        }


def _ensure(
    report: SeedReport, model: type[models.Model], lookup: dict, defaults: dict | None = None
) -> tuple[models.Model, bool]:
    """Get by natural key, or build, validate like the admin would, and save. Never updates."""
    obj = model._default_manager.filter(**lookup).first()
    if obj is not None:
        return obj, False
    obj = model(**lookup, **(defaults or {}))
    _validate(obj)
    obj.save()
    report.count(model._meta.model_name)
    return obj, True


def _validate(obj: models.Model) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise DemoDataError(f"{obj._meta.verbose_name} {obj!s}: {exc.message_dict}") from exc
