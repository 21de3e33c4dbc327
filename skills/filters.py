"""A skill's record filter and sort order, over system and custom fields of its calling lists.

Shared by the planner (which records a pass selects), the send-time guard (a text whose record no
longer passes), the filter preview and the "when the filter changes" action.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers
from django.db.models import (
    CharField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Lower

from messaging.selectors import RECORD_SYSTEM_ATTRIBUTES
from messaging.templating import EMAIL_SYSTEM_FIELDS, PHONE_SYSTEM_FIELDS
from pcsms.addresses import is_email
from skills.importing.fields import parse_bool, parse_date, parse_decimal, parse_int
from skills.models import (
    CustomField,
    Destination,
    FieldType,
    FilterCondition,
    Record,
    SortCriterion,
)

DATETIME = "datetime"


@dataclass(frozen=True)
class RecordField:
    name: str
    column: str
    type: str
    nullable: bool = False


_SYSTEM_TYPES = {"Priority": FieldType.BOOLEAN, "Score": FieldType.INTEGER}
_SYSTEM_TYPES["ExpirationDate"] = FieldType.DATE
SYSTEM_RECORD_FIELDS: dict[str, RecordField] = {}
for _name, _column in RECORD_SYSTEM_ATTRIBUTES.items():
    _field = RecordField(
        _name,
        _column,
        _SYSTEM_TYPES.get(_name, FieldType.STRING),
        nullable=_column in ("score", "expires_on"),
    )
    SYSTEM_RECORD_FIELDS[_name.lower()] = SYSTEM_RECORD_FIELDS[_column] = _field
for _field in (
    RecordField("CreatedAt", "created_at", DATETIME),
    RecordField("Attempts", "attempts", FieldType.INTEGER),
    RecordField("LastAttemptAt", "last_attempt_at", DATETIME, nullable=True),
):
    SYSTEM_RECORD_FIELDS[_field.name.lower()] = SYSTEM_RECORD_FIELDS[_field.column] = _field
# Fields whose values are the record's destinations: phone columns and Email.
_PHONE_BY_LOWER = {name.lower(): name for name in (*PHONE_SYSTEM_FIELDS, *EMAIL_SYSTEM_FIELDS)}
_DESTINATION_TYPES = ({FieldType.PHONE}, {FieldType.EMAIL})

_PARSERS: dict[str, Callable] = {
    FieldType.STRING: lambda v: str(v).strip(),
    FieldType.PHONE: lambda v: str(v).strip(),
    FieldType.EMAIL: lambda v: str(v).strip(),
    FieldType.INTEGER: parse_int,
    FieldType.DECIMAL: parse_decimal,
    FieldType.DATE: parse_date,
    DATETIME: parse_date,
    FieldType.BOOLEAN: parse_bool,
}
_NOTHING = Q(pk__in=[])
Op = FilterCondition.Operator


def _split_values(raw: str) -> list[str]:
    return [v.strip() for v in (raw or "").split(",") if v.strip()]


def custom_field_types(list_ids: Iterable[int]) -> dict[str, dict[int, tuple[str, str]]]:
    """Lower-case custom field name -> {list id: (name as stored, type)}."""
    types: dict[str, dict[int, tuple[str, str]]] = {}
    for list_id, name, field_type in CustomField.objects.filter(
        calling_list_id__in=list(list_ids)
    ).values_list("calling_list_id", "name", "field_type"):
        types.setdefault(name.lower(), {})[list_id] = (name, field_type)
    return types


class RecordFilter:
    """The skill's filter: AND of its conditions, as much as possible in SQL.

    Text comparisons ignore case. Typed fields compare as their type (numbers as numbers,
    dates as dates). An empty value is never ``<`` or ``>`` anything, and is ``!=`` everything.
    A condition whose value cannot be read as its field's type matches nothing (and is
    reported): texting people the administrator meant to exclude is worse than texting none.
    Custom fields stored as text (text, date) are compared in SQL; numbers and yes/no values
    of custom fields are checked in Python on each bounded batch.
    """

    def __init__(
        self,
        conditions: Iterable[FilterCondition],
        *,
        custom_types: dict[str, dict[int, tuple[str, str]]],
        phone_region: str = "US",
    ) -> None:
        self.custom_types = custom_types
        self.phone_region = phone_region
        self.q = Q()
        self.aliases: dict[str, object] = {}
        self.checks: list[Callable[[Record], bool]] = []
        self.problems: list[str] = []
        for index, condition in enumerate(conditions):
            self.q &= self._condition(index, condition)

    def apply(self, queryset: QuerySet) -> QuerySet:
        if self.aliases:
            queryset = queryset.alias(**self.aliases)
        return queryset.filter(self.q)

    def passes(self, record: Record) -> bool:
        return all(check(record) for check in self.checks)

    # --- building ---

    def _problem(self, condition: FilterCondition, why: str) -> Q:
        self.problems.append(f'Filter "{condition}": {why}; it matches no record.')
        return _NOTHING

    def _condition(self, index: int, condition: FilterCondition) -> Q:
        key = condition.field.strip().lower()
        custom = self.custom_types.get(key, {})
        custom_kinds = {t for _n, t in custom.values()}
        if key in _PHONE_BY_LOWER or (custom and custom_kinds in _DESTINATION_TYPES):
            name = _PHONE_BY_LOWER.get(key) or next(iter(custom.values()))[0]
            return self._phone(condition, name)
        if key in SYSTEM_RECORD_FIELDS:
            return self._system(index, condition, SYSTEM_RECORD_FIELDS[key])
        if len(custom_kinds) == 1 and custom_kinds <= {FieldType.STRING, FieldType.DATE}:
            name = next(iter(custom.values()))[0]
            return self._custom_text(index, condition, name, custom_kinds.pop())
        if custom_kinds:
            self.checks.append(self._custom_python(condition, custom))
            return Q()
        # A name no list defines: every record's value is empty.
        return self._custom_text(index, condition, condition.field.strip(), FieldType.STRING)

    def _targets(self, condition: FilterCondition, field_type: str) -> list | None:
        parse = _PARSERS[field_type]
        raw = _split_values(condition.value) if condition.operator == Op.IN else [condition.value]
        try:
            return [parse(v) for v in raw]
        except ValueError:
            return None

    def _system(self, index: int, condition: FilterCondition, f: RecordField) -> Q:
        op, col = condition.operator, f.column
        if op == Op.IS_EMPTY:
            if f.nullable:
                return Q(**{f"{col}__isnull": True})
            return Q(**{col: ""}) if f.type == FieldType.STRING else _NOTHING
        if op in (Op.CONTAINS, Op.STARTSWITH):
            text = condition.value.strip()
            lookup = "icontains" if op == Op.CONTAINS else "istartswith"
            if f.type == FieldType.STRING:
                return Q(**{f"{col}__{lookup}": text})
            if f.type in (FieldType.BOOLEAN, DATETIME):
                return self._problem(condition, f"{f.name} cannot be searched as text")
            alias = f"_filter{index}"
            self.aliases[alias] = Cast(col, CharField())
            return Q(**{f"{alias}__{lookup}": text})
        targets = self._targets(condition, f.type)
        if not targets:
            return self._problem(condition, f"'{condition.value}' is not a {f.type} value")
        if f.type == FieldType.STRING:
            if op == Op.EQ:
                return Q(**{f"{col}__iexact": targets[0]})
            if op == Op.NE:
                return ~Q(**{f"{col}__iexact": targets[0]})
            if op == Op.IN:
                q = Q()
                for target in targets:
                    q |= Q(**{f"{col}__iexact": target})
                return q
            alias = f"_filter{index}"
            self.aliases[alias] = Lower(col)
            return Q(**{f"{alias}__{op}": targets[0].lower()})
        if f.type == FieldType.BOOLEAN and op in (Op.LT, Op.GT):
            return self._problem(condition, f"{f.name} is yes/no: use = or !=")
        lhs = f"{col}__date" if f.type == DATETIME else col
        if op == Op.EQ:
            return Q(**{lhs: targets[0]})
        if op == Op.NE:
            return ~Q(**{lhs: targets[0]})
        if op == Op.IN:
            return Q(**{f"{lhs}__in": targets})
        return Q(**{f"{lhs}__{op}": targets[0]})

    def _custom_text(self, index: int, condition: FilterCondition, name: str, kind: str) -> Q:
        """A custom field stored as JSON text (text, or ISO dates that sort as text)."""
        alias = f"_filter{index}"
        self.aliases[alias] = Lower(
            Coalesce(KeyTextTransform(name, "custom"), Value(""), output_field=TextField())
        )
        op = condition.operator
        if op == Op.IS_EMPTY:
            return Q(**{alias: ""})
        if kind == FieldType.DATE and op not in (Op.CONTAINS, Op.STARTSWITH):
            dates = self._targets(condition, FieldType.DATE)
            if not dates:
                return self._problem(condition, f"'{condition.value}' is not a date")
            targets = [d.isoformat() for d in dates]
        else:
            targets = [
                v.lower()
                for v in (
                    _split_values(condition.value) if op == Op.IN else [condition.value.strip()]
                )
            ]
        if not targets:
            return self._problem(condition, "no value to compare with")
        if op == Op.EQ:
            return Q(**{alias: targets[0]})
        if op == Op.NE:
            return ~Q(**{alias: targets[0]})
        if op == Op.IN:
            return Q(**{f"{alias}__in": targets})
        if op in (Op.LT, Op.GT):
            return ~Q(**{alias: ""}) & Q(**{f"{alias}__{op}": targets[0]})
        return Q(**{f"{alias}__{op}": targets[0]})

    def _custom_python(
        self, condition: FilterCondition, per_list: dict[int, tuple[str, str]]
    ) -> Callable[[Record], bool]:
        op = condition.operator
        targets_by_type: dict[str, list | None] = {}
        fallback = next(iter(per_list.values()))

        def targets(field_type: str) -> list | None:
            if field_type not in targets_by_type:
                targets_by_type[field_type] = self._targets(condition, field_type)
                if targets_by_type[field_type] is None and op != Op.IS_EMPTY:
                    self.problems.append(
                        f"Filter \"{condition}\": '{condition.value}' is not a {field_type} "
                        "value; it matches no record."
                    )
            return targets_by_type[field_type]

        def check(record: Record) -> bool:
            name, field_type = per_list.get(record.calling_list_id, fallback)
            value = (record.custom or {}).get(name)
            empty = value is None or (isinstance(value, str) and not value.strip())
            if op == Op.IS_EMPTY:
                return empty
            wanted = targets(field_type)
            if not wanted:
                return False
            if empty:
                return op == Op.NE
            try:
                value = _PARSERS[field_type](value)
            except ValueError:
                return op == Op.NE
            if op in (Op.CONTAINS, Op.STARTSWITH):
                text, needle = str(value).lower(), str(condition.value).strip().lower()
                return needle in text if op == Op.CONTAINS else text.startswith(needle)
            try:
                if op == Op.EQ:
                    return value == wanted[0]
                if op == Op.NE:
                    return value != wanted[0]
                if op == Op.IN:
                    return value in wanted
                return value < wanted[0] if op == Op.LT else value > wanted[0]
            except TypeError:
                return False

        return check

    def _phone(self, condition: FilterCondition, field_name: str) -> Q:
        """Phone and email fields are a record's destinations from that column."""
        numbers = Destination.objects.filter(record=OuterRef("pk"), source_field__iexact=field_name)
        op = condition.operator
        if op == Op.IS_EMPTY:
            return ~Exists(numbers)
        if op in (Op.LT, Op.GT):
            return self._problem(condition, "phone numbers cannot be compared with < or >")
        if op in (Op.CONTAINS, Op.STARTSWITH):
            text = condition.value.strip()
            text = text.lower() if "@" in text else text  # addresses are stored lower-case
            return Exists(numbers.filter(**{f"phone_number__{op}": text}))
        raw = _split_values(condition.value) if op == Op.IN else [condition.value.strip()]
        wanted = [_e164(v, self.phone_region) for v in raw]
        matching = Exists(numbers.filter(phone_number__in=wanted))
        return ~matching if op == Op.NE else matching


def _e164(raw: str, region: str) -> str:
    """A value as destinations store it: E.164, or an address lower-cased."""
    if is_email(raw):
        return raw.strip().lower()
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- Sort order --------------------------------------------------------------------------------


def sort_order(criteria: Iterable[SortCriterion], problems: list[str] | None = None) -> list:
    """ORDER BY expressions for the skill's sort criteria; empty values last, text ignoring
    case, the id last. "Created" order is id order (ids are given as records are created),
    which lets the default order walk the (calling_list, is_final, id) index."""
    order = []
    for criterion in criteria:
        f = SYSTEM_RECORD_FIELDS.get(criterion.field.strip().lower())
        if f is None:
            if problems is not None:
                problems.append(f'Sort field "{criterion.field}" is not a record field; ignored.')
            continue
        descending = criterion.direction == SortCriterion.Direction.DESC
        if f.column == "created_at":
            order.append(F("id").desc() if descending else F("id").asc())
            break  # ids are unique: nothing after it matters
        expression = Lower(f.column) if f.type == FieldType.STRING else F(f.column)
        order.append(
            expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
        )
    if not order or order[-1].expression != F("id"):
        order.append(F("id").asc())
    return order
