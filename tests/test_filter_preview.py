"""The Filter page's preview: how many open records the filter rows in the form let through,
before they are saved."""

from __future__ import annotations

import pytest
from django.urls import reverse

from skills.models import CustomField, FieldType, FilterCondition
from skills.selectors import skill_filter_preview
from tests.factories import CallingListFactory, RecordFactory, SkillFactory

PREFIX = "filter_conditions"


@pytest.fixture
def skill(bu):
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    CustomField.objects.create(
        calling_list=calling_list, name="Balance", field_type=FieldType.DECIMAL
    )
    for external_id, state, balance in (
        ("A", "IL", 12.5),
        ("B", "IL", 100),
        ("C", "il", 250),
        ("D", "TX", 75),
        ("E", "TX", None),
    ):
        custom = {} if balance is None else {"Balance": balance}
        RecordFactory(
            calling_list=calling_list, external_id=external_id, state=state, custom=custom
        )
    # A finished record is never texted again: not counted.
    RecordFactory(
        calling_list=calling_list, external_id="F", state="IL", is_final=True, final_reason="done"
    )
    made = SkillFactory(business_unit=bu, name="Reminders")
    made.calling_lists.add(calling_list)
    return made


def _rows(*rows, deleted=()) -> dict[str, str]:
    """The inline formset's fields as the browser posts them (with one empty extra row)."""
    data = {f"{PREFIX}-TOTAL_FORMS": str(len(rows) + 1), f"{PREFIX}-INITIAL_FORMS": "0"}
    for i, (field, operator, value) in enumerate([*rows, ("", "eq", "")]):
        data |= {
            f"{PREFIX}-{i}-field": field,
            f"{PREFIX}-{i}-operator": operator,
            f"{PREFIX}-{i}-value": value,
        }
        if i in deleted:
            data[f"{PREFIX}-{i}-DELETE"] = "on"
    return data


def _preview(client, skill, data):
    return client.post(reverse("admin:skills_skill_filter_preview", args=[skill.pk]), data)


@pytest.fixture
def operator(client, staff_member):
    client.force_login(staff_member)
    return client


def test_counts_the_open_records_the_rows_let_through(operator, skill):
    response = _preview(operator, skill, _rows(("State", "eq", "IL")))

    assert response.status_code == 200
    data = response.json()
    assert (data["matching"], data["total"], data["approximate"]) == (3, 5, False)
    assert data["text"] == "3 of 5 open records match the filter."
    assert not FilterCondition.objects.exists()  # nothing was saved


def test_rows_are_and_ed_and_custom_numbers_compare_as_numbers(operator, skill):
    rows = _rows(("State", "eq", "il"), ("Balance", "gt", "$50.00"))

    assert _preview(operator, skill, rows).json()["matching"] == 2  # B and C


def test_deleted_and_empty_rows_count_for_nothing(operator, skill):
    rows = _rows(("State", "eq", "TX"), ("Balance", "lt", "20"), deleted={1})

    assert _preview(operator, skill, rows).json()["matching"] == 2


def test_no_rows_let_every_open_record_through(operator, skill):
    assert _preview(operator, skill, _rows()).json()["text"] == (
        "5 of 5 open records match the filter."
    )


def test_a_value_the_field_cannot_hold_is_reported(operator, skill):
    data = _preview(operator, skill, _rows(("Score", "gt", "lots"))).json()

    assert data["matching"] == 0
    assert any("matches no record" in problem for problem in data["problems"])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("State", "bogus", "IL"), 'Row 1: choose an operator for "State".'),
        (("State", "eq", ""), 'Row 1 ("State"): Give a value to compare with.'),
    ],
)
def test_a_row_that_cannot_be_read_is_a_clear_error(operator, skill, row, message):
    response = _preview(operator, skill, _rows(row))

    assert response.status_code == 400
    assert response.json()["error"] == message


def test_another_units_skill_is_not_found(client, other_bu, staff_member):
    client.force_login(staff_member)
    theirs = SkillFactory(business_unit=other_bu)

    assert _preview(client, theirs, _rows()).status_code == 404


def test_only_post_is_answered(operator, skill):
    url = reverse("admin:skills_skill_filter_preview", args=[skill.pk])

    assert operator.get(url).status_code == 405


def test_past_the_scan_limit_the_count_is_an_estimate(skill):
    conditions = [FilterCondition(field="Balance", operator="gt", value="50")]

    exact = skill_filter_preview(skill=skill, conditions=conditions)
    estimate = skill_filter_preview(skill=skill, conditions=conditions, scan_limit=2)

    assert (exact.matching, exact.approximate) == (3, False)
    assert estimate.approximate and estimate.text.startswith("about ")
