"""One vocabulary of the record's system fields: templates, the import and the commit agree."""

from __future__ import annotations

import pytest

from messaging.templating import (
    EMAIL_SYSTEM_FIELDS,
    PHONE_SYSTEM_FIELDS,
    RECORD_SYSTEM_FIELDS,
    SYSTEM_FIELDS,
)
from skills.importing import commit, normalise
from skills.importing.fields import SYSTEM_BY_NAME, SystemField, system_field_for
from skills.importing.fields import SYSTEM_FIELDS as IMPORT_FIELDS
from skills.models import FieldType, Record


def test_every_name_a_template_knows_can_be_imported_and_no_other():
    assert sorted(f.name for f in IMPORT_FIELDS) == sorted(SYSTEM_FIELDS)


def test_the_import_writes_each_field_into_its_record_column():
    columns = {f.column for f in Record._meta.concrete_fields}
    for field in IMPORT_FIELDS:
        if field.name in PHONE_SYSTEM_FIELDS:
            assert field.attribute == "" and field.field_type == FieldType.PHONE
        elif field.name in EMAIL_SYSTEM_FIELDS:  # destinations too
            assert field.attribute == "" and field.field_type == FieldType.EMAIL
        else:
            assert field.attribute in columns, field.name


def test_a_field_outside_the_vocabulary_is_refused_when_the_table_is_built():
    with pytest.raises(ValueError, match="'Nickname' is not a record system field"):
        SystemField("Nickname", FieldType.STRING)


def test_the_commit_copies_every_record_column_a_row_carries():
    assert commit.RECORD_COLUMNS[0] == "external_id"
    assert set(commit.RECORD_COLUMNS) <= {f.column for f in Record._meta.concrete_fields}
    names = [n for n, _ in normalise.STAGE_COLUMNS]
    assert names[1 : 1 + len(commit.RECORD_COLUMNS)] == commit.RECORD_COLUMNS
    # A replace import updates each mapped non-key field in its own column.
    assert commit.RECORD_FIELDS["Zip"] == "zip_code"
    assert "ExternalId" not in commit.RECORD_FIELDS
    assert set(commit.RECORD_FIELDS.values()) <= set(commit.RECORD_COLUMNS)


@pytest.mark.parametrize(
    ("header", "field"),
    [("Mobile", "SMSPhoneNumber"), ("Postal Code", "Zip"), ("FName", "FirstName")],
)
def test_a_header_alias_maps_to_a_vocabulary_name(header, field):
    assert system_field_for(header) == field
    assert SYSTEM_BY_NAME[field].attribute == RECORD_SYSTEM_FIELDS[field]
