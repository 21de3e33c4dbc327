"""Configuration as a TOML file: export what the admin holds, apply a file to another system.

What is configuration: business units and their custom time zones, DNC groups (not their
entries), transport codes, sending registrations, calling lists with their custom fields (the
templates' merge fields; not their records), message templates, campaigns, and skills with
every parameter page (cadence, CPA rules, filter, sort order, schedule, time-zone bounding);
and the state rules every business unit shares (``[[state_rules]]``: the sending-window presets
with their holiday dates, matched by code).
What is not: records, DNC entries, messages, a skill's state (applying a file never starts
or stops anything) and secrets (the CRM key's hash; carrier credentials live in the
environment). Objects are matched by their natural keys: a business unit by name, a transport
code by number, everything else by name within its business unit.

Applying is all or nothing: every object is validated as the admin would (``full_clean``), the
first file error aborts, and all errors are reported with where they are in the file
(``business_units[0].skills[1].cadence[0]: attempts: ...``). A key left out of a table leaves
that field as it is (or at its default, for a new object); a skill's list of rows (say
``cadence``) or a list's ``custom_fields``, when given, replaces its rows. Calling lists a
skill names are created, empty, when the file does not define them: uploads fill them.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import tomli_w
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from dnc.models import DncGroup
from messaging.models import MessageTemplate, SmsRegistration, TransportCode
from pcsms.models import BusinessUnit, CustomTimeZone, KeywordSet
from skills.models import (
    Blackout,
    CadenceStep,
    CallingList,
    Campaign,
    CpaRule,
    CustomField,
    FilterCondition,
    PresetHoliday,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    SortCriterion,
    StateRuleOverride,
    TimeZoneBound,
)
from skills.services import skill_apply_defaults

# Never in a file: identity, bookkeeping, the skill's state, secrets.
_SKIPPED = {
    "id",
    "business_unit",
    "skill",
    "calling_list",
    "created_at",
    "updated_at",
    "state",
    "state_changed_at",
    "xs_api_key_hash",
}


@dataclass(frozen=True)
class Section:
    key: str  # the array of tables in a business unit's table
    model: type[models.Model]
    natural_key: str  # unique within the business unit (TransportCode: everywhere)
    # Foreign keys written as the other object's natural key: field -> (model, its key field).
    references: dict[str, tuple[type[models.Model], str]] = field(default_factory=dict)
    # Rows owned by each object, as arrays of tables: key -> (model, owner field, order).
    children: dict[str, tuple[type[models.Model], str, tuple[str, ...]]] = field(
        default_factory=dict
    )


# In the order they are applied: each may name the ones before it.
SECTIONS = [
    Section("custom_time_zones", CustomTimeZone, "name"),
    Section("keyword_sets", KeywordSet, "language"),
    Section("dnc_groups", DncGroup, "name"),
    Section("transport_codes", TransportCode, "number"),
    Section(
        "registrations",
        SmsRegistration,
        "name",
        {"transport_code": (TransportCode, "number"), "stop_dnc_group": (DncGroup, "name")},
    ),
    Section(
        "calling_lists",
        CallingList,
        "name",
        children={"custom_fields": (CustomField, "calling_list", ("position", "name"))},
    ),
    Section("templates", MessageTemplate, "name"),
    Section("campaigns", Campaign, "name"),
    Section(
        "skills",
        Skill,
        "name",
        {
            "campaign": (Campaign, "name"),
            "registration": (SmsRegistration, "name"),
            "template": (MessageTemplate, "name"),
        },
        children={
            "cadence": (CadenceStep, "skill", ("position", "id")),
            "cpa_rules": (CpaRule, "skill", ("match",)),
            "filter": (FilterCondition, "skill", ("position", "id")),
            "sort": (SortCriterion, "skill", ("position", "id")),
            "schedule": (ScheduleDay, "skill", ("weekday",)),
            "time_zones": (TimeZoneBound, "skill", ("time_zone",)),
        },
    ),
    # The BU's stricter versions of the state rules (after them in the file: see STATE_RULES).
    Section(
        "state_rule_overrides",
        StateRuleOverride,
        "preset",
        {"preset": (SendingWindowPreset, "code")},
    ),
    Section("blackouts", Blackout, "reason"),
]
# The state rules: shared by every business unit, their holiday dates as rows of each.
STATE_RULES = Section(
    "state_rules",
    SendingWindowPreset,
    "code",
    children={"holidays": (PresetHoliday, "preset", ("date",))},
)
SKILL_LISTS = {  # many-to-many fields of a skill, written as names
    "calling_lists": CallingList,
    "scrubbed_dnc_groups": DncGroup,
    "contributing_dnc_groups": DncGroup,
}


class ConfigError(Exception):
    """The file cannot be applied; ``errors`` says where and why, nothing was changed."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def _fields(model: type[models.Model]) -> list[models.Field]:
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in _SKIPPED and not f.auto_created and f.editable is not False
    ]


# --- Export -----------------------------------------------------------------------------------


def _value(obj: models.Model, f: models.Field, references: dict) -> Any:
    value = getattr(obj, f.attname)
    if f.is_relation:
        if value is None:
            return None
        target, key = references.get(f.name, (f.related_model, "code"))
        return getattr(getattr(obj, f.name), key)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _table(obj: models.Model, references: dict | None = None) -> dict:
    table = {}
    for f in _fields(type(obj)):
        value = _value(obj, f, references or {})
        if value is not None:  # TOML has no null: a missing key means "none"
            table[f.name] = value
    return table


def config_export(business_units=None) -> str:
    """The configuration of ``business_units`` (default: all) as TOML text."""
    units = business_units if business_units is not None else BusinessUnit.objects.all()
    out = []
    for bu in units.order_by("name"):
        table = _table(bu)
        for section in SECTIONS:
            rows = []
            objects = section.model.objects.filter(business_unit=bu).order_by(
                _lookup(section, section.natural_key)
            )
            for obj in objects:
                row = _table(obj, section.references)
                if section.model is Skill:
                    for name in SKILL_LISTS:
                        row[name] = sorted(getattr(obj, name).values_list("name", flat=True))
                for key, (model, owner, order) in section.children.items():
                    kids = model.objects.filter(**{owner: obj}).order_by(*order)
                    row[key] = [_table(kid) for kid in kids]
                rows.append(row)
            if rows:
                table[section.key] = rows
        out.append(table)
    rules = []
    for preset in SendingWindowPreset.objects.prefetch_related("holidays").order_by("code"):
        row = _table(preset)
        row["holidays"] = [{"date": h.date, "name": h.name} for h in preset.holidays.all()]
        rules.append(row)
    header = (
        "# pcsms configuration: `manage.py config apply FILE` applies it (see skills/config.py)\n"
    )
    return header + tomli_w.dumps({"state_rules": rules, "business_units": out})


# --- Apply ------------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    dry_run: bool = False

    def as_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": dict(self.unchanged),
        }


class _Rollback(Exception):
    pass


def config_apply(text: str, *, dry_run: bool = False, progress=None) -> ApplyResult:
    """Apply TOML ``text``: all of it, or nothing (ConfigError lists every problem found).

    ``progress(done, total, phase, label=...)`` is told each state rule and business unit as
    it starts on it (a command's progress bar, pcsms/commands.py)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"The file is not valid TOML: {exc}."]) from None
    units = data.get("business_units", [] if "state_rules" in data else None)
    if not isinstance(units, list) or not all(isinstance(u, dict) for u in units):
        raise ConfigError(["The file has no [[business_units]] tables."])
    rules = data.get("state_rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(["state_rules: expected an array of tables."])
    result = ApplyResult(dry_run=dry_run)
    errors: list[str] = []
    try:
        with transaction.atomic():
            # First: the skills' time-zone bounding names presets by code.
            total = len(rules) + len(units)
            for index, rule in enumerate(rules):
                if progress is not None:
                    progress(index, total, "state rules", label=f"state rule {index + 1}")
                _apply_row(STATE_RULES, rule, f"state_rules[{index}]", None, result, errors)
            for index, unit in enumerate(units):
                if progress is not None:
                    name = unit.get("name") or f"#{index + 1}"
                    progress(len(rules) + index, total, "units", label=f"business unit {name}")
                _apply_unit(unit, f"business_units[{index}]", result, errors)
            if progress is not None:
                progress(total, total, "saving")
            if errors:
                raise _Rollback
            if dry_run:
                raise _Rollback
    except _Rollback:
        if errors:
            raise ConfigError(errors) from None
    return result


def _label(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name_plural)


def _assign(obj, model, values: dict, where: str, references: dict, bu, errors) -> bool:
    """Set ``values`` on ``obj``; False (with errors) when one cannot be read."""
    known = {f.name: f for f in _fields(model)}
    ok = True
    for key, raw in values.items():
        f = known.get(key)
        if f is None:
            errors.append(f"{where}: unknown key {key!r} for {model._meta.verbose_name}.")
            ok = False
            continue
        if f.is_relation:
            if raw in ("", None):
                setattr(obj, f.name, None)
                continue
            target, natural = references.get(f.name, (f.related_model, "code"))
            scope = {"business_unit": bu} if _has_bu(target) else {}
            other = target.objects.filter(**scope, **{natural: raw}).first()
            if other is None:
                errors.append(f"{where}: {key}: no {target._meta.verbose_name} {raw!r}.")
                ok = False
                continue
            setattr(obj, f.name, other)
            continue
        try:
            value = None if raw == "" and f.null and not isinstance(f, models.CharField) else raw
            if isinstance(f, models.DecimalField) and isinstance(value, float):
                value = Decimal(str(value))
            setattr(obj, f.attname, f.to_python(value))
        except ValidationError as exc:
            errors.append(f"{where}: {key}: {' '.join(exc.messages)}")
            ok = False
    return ok


def _lookup(section: Section, name: str) -> str:
    """The query path of a section's field: a reference by the other object's key."""
    reference = section.references.get(name)
    return f"{name}__{reference[1]}" if reference else name


def _has_bu(model: type[models.Model]) -> bool:
    return any(f.name == "business_unit" for f in model._meta.concrete_fields)


def _save(obj, where: str, result: ApplyResult, created: bool, before: dict | None, errors):
    try:
        obj.full_clean()
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            prefix = "" if name == "__all__" else f"{name}: "
            errors.extend(f"{where}: {prefix}{message}" for message in messages)
        return False
    label = _label(type(obj))
    if not created and before == _snapshot(obj):
        result.unchanged[label] += 1
        return True
    try:
        with transaction.atomic():  # a savepoint: the rest of the file is still checked
            obj.save()
    except IntegrityError as exc:
        errors.append(f"{where}: {exc}".strip())
        return False
    (result.created if created else result.updated)[label] += 1
    return True


def _snapshot(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _apply_unit(unit: dict, where: str, result: ApplyResult, errors: list[str]) -> None:
    name = unit.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}: a business unit needs a name.")
        return
    sections = {s.key for s in SECTIONS}
    bu = BusinessUnit.objects.filter(name=name).first()
    created = bu is None
    if created:  # saved first with its defaults: its zones and groups point at it
        bu = BusinessUnit(name=name)
        bu.save()
    before = None if created else _snapshot(bu)
    plain = {k: v for k, v in unit.items() if k not in sections}
    # What the skills' checks below read of their unit (an email skill needs its postal
    # address), set before them; every plain field is assigned and checked after the sections.
    for name in ("business_name", "postal_address"):
        if isinstance(plain.get(name), str):
            setattr(bu, name, plain[name])
    # The unit's zones may be custom ones defined below: it is checked after them.
    for section in SECTIONS:
        rows = unit.get(section.key)
        if rows is None:
            continue
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            errors.append(f"{where}.{section.key}: expected an array of tables.")
            continue
        if section.model is DncGroup:  # one default per unit: unset before set
            rows = sorted(rows, key=lambda r: bool(r.get("is_default")))
        for index, row in enumerate(rows):
            _apply_row(section, row, f"{where}.{section.key}[{index}]", bu, result, errors)
    if _assign(bu, BusinessUnit, plain, where, {}, bu, errors):
        if created:
            result.created[_label(BusinessUnit)] += 1
            try:
                bu.full_clean()
            except ValidationError as exc:
                errors.extend(f"{where}: {m}" for m in exc.messages)
            else:
                bu.save()
        else:
            _save(bu, where, result, False, before, errors)


def _apply_row(section: Section, row: dict, where: str, bu, result, errors) -> None:
    key = row.get(section.natural_key)
    if not isinstance(key, str) or not key.strip():
        errors.append(f"{where}: {section.natural_key} is required.")
        return
    model = section.model
    scope = {} if model in (TransportCode, SendingWindowPreset) else {"business_unit": bu}
    obj = model.objects.filter(**scope, **{_lookup(section, section.natural_key): key}).first()
    created = obj is None
    if obj is not None and model is TransportCode and obj.business_unit_id != bu.pk:
        errors.append(f"{where}: transport code {key} belongs to another business unit.")
        return
    if created:
        obj = model(**scope) if model is SendingWindowPreset else model(business_unit=bu)
    before = None if created else _snapshot(obj)
    extras = set(section.children) | (set(SKILL_LISTS) if model is Skill else set())
    values = {k: v for k, v in row.items() if k not in extras}
    if not _assign(obj, model, values, where, section.references, bu, errors):
        return
    if not _save(obj, where, result, created, before, errors):
        return
    if model is Skill:
        if created:  # the parameter pages' default rows, as the admin gives a new skill
            skill_apply_defaults(skill=obj)
        _apply_skill_lists(obj, row, where, bu, result, errors)
    for key, spec in section.children.items():
        if key in row:
            _apply_children(obj, key, spec, row[key], f"{where}.{key}", bu, result, errors)


def _apply_skill_lists(skill: Skill, row: dict, where: str, bu, result, errors) -> None:
    for name, model in SKILL_LISTS.items():
        if name not in row:
            continue
        names = row[name]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            errors.append(f"{where}.{name}: expected an array of names.")
            continue
        found = {o.name: o for o in model.objects.filter(business_unit=bu, name__in=names)}
        missing = [n for n in names if n not in found]
        if model is CallingList:
            for list_name in missing:  # lists hold data: created empty, filled by uploads
                found[list_name] = CallingList.objects.create(business_unit=bu, name=list_name)
                result.created[_label(CallingList)] += 1
        elif missing:
            errors.append(f"{where}.{name}: no {model._meta.verbose_name} {missing[0]!r}.")
            continue
        getattr(skill, name).set([found[n] for n in names])


def _apply_children(owner, key: str, spec, rows, where: str, bu, result, errors) -> None:
    """The owner's rows of one kind become the file's, unless they are the same already."""
    model, owner_field, order = spec
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        errors.append(f"{where}: expected an array of tables.")
        return
    refs = {"preset": (SendingWindowPreset, "code")} if model is TimeZoneBound else {}
    items = []
    for index, values in enumerate(rows):
        item = model(**{owner_field: owner})
        if _assign(item, model, values, f"{where}[{index}]", refs, bu, errors):
            items.append(item)
    if len(items) != len(rows):
        return
    existing = list(model.objects.filter(**{owner_field: owner}).order_by(*order))
    if [_table(i) for i in existing] == [_table(i) for i in items]:
        if items:
            result.unchanged[_label(model)] += len(items)
        return
    model.objects.filter(**{owner_field: owner}).delete()  # the file's rows replace them
    for index, item in enumerate(items):
        _save(item, f"{where}[{index}]", result, True, None, errors)
