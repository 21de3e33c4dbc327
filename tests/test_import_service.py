"""Calling-list import: formats, mapping, records and destinations, zones, IDs, the report.

Each test runs the real import (``upload_job_run``) on a small file, as the background task does.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from pcsms.rows import base
from skills.importing import reading, service, streaming
from skills.importing.service import upload_job_preview, upload_job_run
from skills.models import CustomField, Destination, Record, UploadJob
from tests.factories import (
    AttemptFactory,
    CallingListFactory,
    CustomTimeZoneFactory,
    DestinationFactory,
    RecordFactory,
)
from tests.imports import FIXTURES, make_job, numbers, records, report, run_import


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


# --- Formats ----------------------------------------------------------------------------------


def test_the_garbage_collector_is_back_on_after_an_import_ends_well_or_badly(calling_list):
    # The import holds the collector off while it reads (reading.read_rows): a worker that stayed
    # without it would keep every reference cycle it ever made.
    import gc

    assert gc.isenabled()
    run_import(calling_list, "basic.csv")
    assert gc.isenabled()
    failed = run_import(calling_list, "junk.csv")
    assert failed.status == UploadJob.Status.FAILED and gc.isenabled()


@pytest.mark.parametrize("name", ["basic.csv", "basic_bom.csv", "basic.txt", "basic.xlsx"])
def test_each_format_imports_the_same_records(calling_list, name):
    job = run_import(calling_list, name)

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (3, 2, 1)
    got = records(calling_list)
    assert set(got) == {"A1", "A2"}
    ada = got["A1"]
    # The BOM is not part of the first header: ExternalId was matched.
    assert (ada.first_name, ada.last_name, ada.zip_code) == ("Ada", "Lovelace", "60601")
    assert numbers(ada) == [
        (0, "PhoneNumber", "+13125550123", "America/Chicago"),
        (1, "SMSPhoneNumber", "+13125550124", "America/Chicago"),
    ]
    assert numbers(got["A2"]) == [(0, "PhoneNumber", "+12125550100", "America/New_York")]
    assert got["A2"].custom == {"VisitDate": "2027-01-02", "Balance": 3.0}
    assert [r["row"] for r in report(job)] == ["4"]


def test_xlsx_reads_only_the_first_sheet_and_numbers_typed_as_digits(calling_list):
    job = run_import(calling_list, "basic.xlsx")

    assert job.file_format == UploadJob.Format.XLSX
    # D3 holds the number 2125550100 (a float to the reader), not text.
    assert numbers(records(calling_list)["A2"])[0][2] == "+12125550100"
    assert not Record.objects.filter(external_id="not").exists()


def test_quoted_fields_with_commas_tabs_and_line_breaks(calling_list):
    data = (
        "ExternalId,Phone,Notes\r\n"
        'Q1,3125550123,"a, b\tc\nd \\ e"\r\n'
        'Q2,3125550124,"say ""hi"""\r\n'
    )
    job = run_import(calling_list, "quoted.csv", data)

    assert job.rows_valid == 2, report(job)
    got = records(calling_list)
    assert got["Q1"].custom == {"Notes": "a, b\tc\nd \\ e"}
    assert got["Q2"].custom == {"Notes": 'say "hi"'}


# --- File-level errors: one message, nothing imported --------------------------------------


FILE_ERRORS = [
    ("latin1.csv", None, "not UTF-8"),
    ("junk.csv", None, "not a text file"),
    ("empty.csv", None, "The file is empty"),
    ("header_only.csv", None, "no data rows"),
    ("notes.pdf", None, "not supported"),
    ("list.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100, "not supported"),
    ("csv_renamed.xlsx", None, "not an Excel workbook"),
    ("zipped.csv", (FIXTURES / "basic.xlsx").read_bytes(), "zipped file"),
    ("utf16.csv", "ExternalId,Phone\n".encode("utf-16"), "UTF-16"),
    ("semicolons.csv", "ExternalId;Phone\nX;3125550123\n", "separated by semicolons"),
    ("formulas_uncalculated.xlsx", None, "formulas without saved results"),
]


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_are_numbered_alike_before_and_after_the_first_quote(
    calling_list, monkeypatch, workers
):
    # Lines without quotes go to the readers as they are; from the first quote on the csv
    # module reads. Tiny blocks cut lines everywhere; CRLF, a blank line, a quoted line break.
    monkeypatch.setattr(base, "BLOCK", 50)
    monkeypatch.setattr(reading, "CHUNK_ROWS", 3)
    plain = [f"Q{i},312555{i:04d},Name{i}" for i in range(10)]
    plain[5] = "Q5,555-01,Bad"  # row 7
    after = [f"Q{i},312555{i:04d},Name{i}" for i in range(12, 18)]
    data = "\r\n".join(
        ["ID,Phone,FirstName", *plain, "", 'Q10,3125550010,"Ann\r\nMarie"', "Q11,555-01,Bad"]
        + after
    )  # the last line has no line break
    job = run_import(calling_list, "quotes.csv", data, workers=workers)

    assert (job.rows_valid, job.rows_invalid) == (16, 2)
    assert [e["row"] for e in report(job)] == ["7", "14"]
    got = records(calling_list)
    assert got["Q10"].first_name == "Ann\r\nMarie"
    assert got["Q17"].first_name == "Name17"
    assert got["Q9"].destinations.get().phone_number == "+13125550009"


@pytest.mark.parametrize(("name", "data", "expected"), FILE_ERRORS)
def test_a_bad_file_fails_with_one_clear_message_and_changes_nothing(
    calling_list, name, data, expected
):
    existing = RecordFactory(calling_list=calling_list, external_id="KEEP")
    job = run_import(calling_list, name, data)

    assert job.status == UploadJob.Status.FAILED
    assert expected in job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (0, 0, 0)
    assert list(Record.objects.filter(calling_list=calling_list)) == [existing]
    assert not CustomField.objects.filter(calling_list=calling_list).exists()
    assert not job.error_report


def test_no_phone_column_mapped_is_a_file_error(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"Phone": "", "SMS": ""})

    assert job.status == UploadJob.Status.FAILED
    assert "No phone column is mapped" in job.message
    assert not Record.objects.exists()


def test_no_external_id_mapped_is_a_file_error(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"ExternalId": {"field": ""}})

    assert job.status == UploadJob.Status.FAILED
    assert "No column is mapped to ExternalId" in job.message
    assert not Record.objects.exists()


def test_a_field_mapped_from_two_columns_is_refused(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"SMS": {"field": "PhoneNumber"}})

    assert job.status == UploadJob.Status.FAILED
    assert "PhoneNumber is mapped from two columns" in job.message


# --- Mapping: aliases and custom fields ------------------------------------------------------


def test_aliases_match_headers_whatever_their_case_spaces_and_underscores(calling_list):
    data = (
        "record,FNAME,Last_Name,sms number,Postal Code,time zone,exp,PRIORITY,score,"
        "customer1,Customer 2,Address,city,STATE\n"
        "R1,Ann,Lee,3125550123,60601,CST,2027-03-01,yes,7,c1,c2,1 Main St,Chicago,IL\n"
    )
    job = make_job(calling_list, "aliases.csv", data)
    mapping = upload_job_preview(job=job).mapping

    assert {column: spec["field"] for column, spec in mapping.items()} == {
        "record": "ExternalId",
        "FNAME": "FirstName",
        "Last_Name": "LastName",
        "sms number": "SMSPhoneNumber",
        "Postal Code": "Zip",
        "time zone": "TimeZone",
        "exp": "ExpirationDate",
        "PRIORITY": "Priority",
        "score": "Score",
        "customer1": "Customer1",
        "Customer 2": "Customer2",
        "Address": "Address",
        "city": "City",
        "STATE": "State",
    }
    job = run_import(calling_list, "aliases.csv", data)
    r = records(calling_list)["R1"]
    assert (r.first_name, r.last_name, r.state, r.city, r.customer2) == (
        "Ann",
        "Lee",
        "IL",
        "Chicago",
        "c2",
    )
    assert (r.priority, r.score, r.expires_on) == (True, 7, dt.date(2027, 3, 1))
    assert (r.time_zone, r.time_zone_source) == ("America/Chicago", "column")
    assert numbers(r) == [(0, "SMSPhoneNumber", "+13125550123", "America/Chicago")]


def test_unmatched_columns_become_typed_custom_fields(calling_list):
    data = (
        "ID,Phone,Appointment Date,Copay,Visits,Insured,Alt Phone,Doctor\n"
        "C1,3125550123,2026-12-01,12.50,3,yes,(646) 555-0100,Dr. Who\n"
        "C2,3125550124,01/15/2027,7,10,no,,Dr. No\n"
    )
    job = run_import(calling_list, "custom.csv", data)

    assert job.rows_valid == 2, report(job)
    fields = dict(
        CustomField.objects.filter(calling_list=calling_list).values_list("name", "field_type")
    )
    assert fields == {
        "AppointmentDate": "date",
        "Copay": "decimal",
        "Visits": "integer",
        "Insured": "boolean",
        "AltPhone": "phone",
        "Doctor": "string",
    }
    got = records(calling_list)
    assert got["C1"].custom == {
        "AppointmentDate": "2026-12-01",
        "Copay": 12.5,
        "Visits": 3,
        "Insured": True,
        "Doctor": "Dr. Who",
    }
    assert got["C2"].custom["AppointmentDate"] == "2027-01-15"
    # The custom phone field is a destination of its own, after the system one.
    assert numbers(got["C1"]) == [
        (0, "PhoneNumber", "+13125550123", "America/Chicago"),
        (1, "AltPhone", "+16465550100", "America/New_York"),
    ]


def test_the_user_can_change_a_custom_field_type_and_name(calling_list):
    data = "ID,Phone,Visits\nC1,3125550123,3\nC2,3125550124,many\n"
    job = run_import(
        calling_list,
        "custom.csv",
        data,
        changes={"Visits": {"field": "VisitNote", "type": "string"}},
    )

    assert job.rows_valid == 2
    assert records(calling_list)["C2"].custom == {"VisitNote": "many"}
    assert CustomField.objects.get(calling_list=calling_list).field_type == "string"


def test_a_value_that_is_not_of_its_fields_type_rejects_the_row(calling_list):
    data = "ID,Phone,Visits,Score\nC1,3125550123,3,5\nC2,3125550124,many,5\nC3,3125550125,4,high\n"
    job = run_import(
        calling_list, "custom.csv", data, changes={"Visits": {"field": "Visits", "type": "integer"}}
    )

    assert set(records(calling_list)) == {"C1"}
    assert [(e["row"], e["reason"]) for e in report(job)] == [
        ("3", "Visits 'many' is not a whole number."),
        ("4", "Score 'high' is not a whole number."),
    ]


# --- Phones ------------------------------------------------------------------------------------


def test_several_phone_columns_give_destinations_in_column_order(calling_list):
    data = (
        "ID,Home,PhoneNumber,SMS,Work\n"
        "P1,3125550101,3125550102,3125550103,3125550104\n"
        "P2,,3125550202,,3125550204\n"
    )
    job = run_import(
        calling_list,
        "phones.csv",
        data,
        changes={
            "Home": {"field": "Home", "type": "phone"},
            "Work": {"field": "Work", "type": "phone"},
        },
    )

    got = records(calling_list)
    assert [(p, s, n) for p, s, n, _ in numbers(got["P1"])] == [
        (0, "Home", "+13125550101"),
        (1, "PhoneNumber", "+13125550102"),
        (2, "SMSPhoneNumber", "+13125550103"),
        (3, "Work", "+13125550104"),
    ]
    assert [(p, s, n) for p, s, n, _ in numbers(got["P2"])] == [
        (0, "PhoneNumber", "+13125550202"),
        (1, "Work", "+13125550204"),
    ]
    assert job.rows_flagged == 0


def test_a_bad_second_number_is_dropped_with_a_warning(calling_list):
    data = "ID,Phone,SMS\nW1,3125550101,12345\nW2,12345,\n"
    job = run_import(calling_list, "phones.csv", data)

    assert (job.rows_valid, job.rows_invalid, job.rows_flagged) == (1, 1, 1)
    assert numbers(records(calling_list)["W1"]) == [
        (0, "PhoneNumber", "+13125550101", "America/Chicago")
    ]
    assert [(e["row"], e["outcome"], e["values"]) for e in report(job)] == [
        ("2", "imported with a warning", "SMS='12345'"),
        ("3", "rejected", "Phone='12345'"),
    ]


def test_numbers_are_read_with_the_business_units_region(calling_list, bu):
    bu.phone_region = "GB"
    bu.allowed_time_zones = ["Europe/London"]
    bu.save()
    data = "ID,Phone\nG1,020 7946 0018\nG2,+1 312 555 0123\nG3,07400 123456\n"
    job = run_import(calling_list, "uk.csv", data)

    got = records(calling_list)
    assert numbers(got["G1"]) == [(0, "PhoneNumber", "+442079460018", "Europe/London")]
    assert numbers(got["G2"])[0][2] == "+13125550123"
    assert got["G3"].destinations.get().phone_number == "+447400123456"
    assert job.rows_flagged == 1  # G2's Chicago zone is not allowed for this BU


# --- Time zones --------------------------------------------------------------------------------


def test_time_zone_sources_in_order_column_zip_phone(calling_list, bu):
    CustomTimeZoneFactory(business_unit=bu, name="Plant Time", utc_offset_minutes=-300)
    bu.allowed_time_zones = [*bu.allowed_time_zones, "Plant Time"]
    bu.save()
    data = (
        "ID,Phone,Zip,TimeZone\n"
        "Z1,2125550100,60601,America/Denver\n"  # the column wins over zip and phone
        "Z2,2125550100,60601,pst\n"  # abbreviations, any case
        "Z3,2125550100,60601,plant time\n"  # the BU's custom zone
        "Z4,2125550100,98101,\n"  # zip (Seattle) over phone (New York)
        "Z5,2125550100,,\n"  # phone
        "Z6,2125550100,2134,\n"  # a zip that lost its leading zero
        "Z7,2125550100,60601,Eastern Standard Time\n"  # a Windows zone name
    )
    job = run_import(calling_list, "zones.csv", data)

    assert job.rows_invalid == 0, report(job)
    got = records(calling_list)
    assert {k: (r.time_zone, r.time_zone_source) for k, r in got.items()} == {
        "Z1": ("America/Denver", "column"),
        "Z2": ("America/Los_Angeles", "column"),
        "Z3": ("Plant Time", "column"),
        "Z4": ("America/Los_Angeles", "zip"),
        "Z5": ("America/New_York", "phone"),
        "Z6": ("America/New_York", "zip"),
        "Z7": ("America/New_York", "column"),
    }
    # Each destination keeps the zone of its own number.
    assert numbers(got["Z1"])[0][3] == "America/New_York"


def test_an_unknown_time_zone_value_rejects_the_row(calling_list):
    job = run_import(calling_list, "zones.csv", "ID,Phone,TZ\nU1,3125550123,Mars/Base\n")

    assert job.rows_invalid == 1
    assert "TimeZone 'Mars/Base' is not a time zone we know" in report(job)[0]["reason"]


def test_no_zone_rejects_the_row_or_takes_the_uploads_default(calling_list, bu):
    # 800 numbers are not geographic; 999 is not a ZIP prefix in the data.
    data = "ID,Phone,Zip\nN1,8005550199,99999x\nN2,3125550123,\n"
    rejected = run_import(calling_list, "nozone.csv", data)

    assert (rejected.rows_valid, rejected.rows_invalid) == (1, 1)
    assert report(rejected)[0]["reason"].startswith("No time zone")
    assert set(records(calling_list)) == {"N2"}

    other = CallingListFactory(business_unit=bu)
    kept = run_import(
        other,
        "nozone.csv",
        data,
        no_zone_policy=UploadJob.NoZonePolicy.DEFAULT,
        default_time_zone="America/Phoenix",
    )
    assert (kept.rows_valid, kept.rows_invalid) == (2, 0)
    n1 = records(other)["N1"]
    assert (n1.time_zone, n1.time_zone_source) == ("America/Phoenix", "default")
    assert numbers(n1)[0][3] == "America/Phoenix"


def test_zones_the_business_unit_does_not_allow_are_flagged_not_rejected(calling_list, bu):
    bu.allowed_time_zones = ["America/Chicago"]
    bu.save()
    job = run_import(calling_list, "zones.csv", "ID,Phone\nF1,3125550123\nF2,2125550100\n")

    assert (job.rows_valid, job.rows_invalid, job.rows_flagged) == (2, 0, 1)
    [entry] = report(job)
    assert entry["row"] == "3" and entry["outcome"] == "imported with a warning"
    assert "America/New_York is not allowed for business unit Acme" in entry["reason"]


# --- External IDs, append and replace, expiration ------------------------------------------


def test_a_repeated_id_in_the_file_is_an_error_row_when_appending(calling_list):
    data = "ID,Phone,FirstName\nD1,3125550101,First\nD2,3125550102,Other\nD1,3125550103,Again\n"
    job = run_import(calling_list, "dups.csv", data)

    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (3, 2, 1)
    assert records(calling_list)["D1"].first_name == "First"
    [entry] = report(job)
    assert (entry["row"], entry["outcome"]) == ("4", "rejected")
    assert "row 2 already has it" in entry["reason"]


def test_appending_an_id_the_list_already_has_is_an_error_row(calling_list):
    RecordFactory(calling_list=calling_list, external_id="E1", first_name="Old")
    job = run_import(
        calling_list, "append.csv", "ID,Phone,FirstName\nE1,3125550101,New\nE2,3125550102,Two\n"
    )

    assert (job.rows_valid, job.rows_invalid) == (1, 1)
    assert records(calling_list)["E1"].first_name == "Old"
    assert "already in the list" in report(job)[0]["reason"]


# Chunks of 3 rows. On PostgreSQL the rows go straight into the list's tables chunk by chunk,
# so a repeat of an earlier chunk's ID must be left out before it is written, and the numbers
# of the rows after it must still go to their own records. A one-byte filter makes every ID
# look like a repeat (every ID is looked up); the real one looks up almost none.
@pytest.mark.parametrize("filter_bits", [8, streaming.StreamWriter.FILTER_BITS])
@pytest.mark.parametrize("had_records", [False, True])
def test_repeated_ids_across_chunks_keep_each_number_with_its_own_record(
    calling_list, monkeypatch, filter_bits, had_records
):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 3)
    monkeypatch.setattr(streaming.StreamWriter, "FILTER_BITS", filter_bits)
    if had_records:
        RecordFactory(calling_list=calling_list, external_id="OLD", first_name="Old")
    data = (
        "ID,Phone,SMS,FirstName\n"
        "A,3125550101,3125550201,Ann\n"  # row 2, chunk 1
        "B,3125550102,,Bo\n"
        "A,3125550103,,again in its own chunk\n"
        "C,3125550104,3125550204,Cy\n"  # row 5, chunk 2
        "B,3125550105,3125550205,a later chunk\n"
        "OLD,3125550106,,in the list before\n"
        "D,3125550107,3125550207,Di\n"  # row 8, chunk 3
        "D,3125550108,,twice in one chunk\n"
        "E,3125550109,,Ed\n"
        "OLD,3125550110,,old again\n"  # row 11, chunk 4
        "X\\Y,3125550112,,a backslash\n"
        "E,3125550113,555-01,a warning and a repeat\n"
        "X\\Y,3125550114,,the backslash again\n"  # row 14, chunk 5
    )
    job = run_import(calling_list, "repeats.csv", data)

    got = records(calling_list)
    assert set(got) == {"A", "B", "C", "D", "E", "OLD", "X\\Y"}
    assert got["OLD"].first_name == ("Old" if had_records else "in the list before")
    assert [n[2] for n in numbers(got["A"])] == ["+13125550101", "+13125550201"]
    assert [n[2] for n in numbers(got["B"])] == ["+13125550102"]
    assert [n[2] for n in numbers(got["C"])] == ["+13125550104", "+13125550204"]
    assert [n[2] for n in numbers(got["D"])] == ["+13125550107", "+13125550207"]
    assert [n[2] for n in numbers(got["E"])] == ["+13125550109"]
    rejected = {e["row"]: e["reason"] for e in report(job)}
    expected = {"4", "6", "9", "11", "13", "14"} | ({"7"} if had_records else set())
    assert set(rejected) == expected
    assert "row 2 already has it" in rejected["4"]
    assert "row 8 already has it" in rejected["9"]
    if had_records:
        assert "already in the list" in rejected["7"]
    # A later repeat names the first row with the ID, whether it was written or rejected.
    assert "row 7 already has it" in rejected["11"]
    assert "row 10 already has it" in rejected["13"]
    assert "row 12 already has it" in rejected["14"]
    assert [e["outcome"] for e in report(job) if e["row"] == "13"] == [
        "imported with a warning",
        "rejected",
    ]
    assert (job.rows_valid, job.rows_invalid) == (13 - len(expected), len(expected))
    assert job.rows_flagged == 0  # the row with the warning was rejected after all
    assert Destination.objects.filter(record__calling_list=calling_list).count() == 9 + (
        0 if had_records else 1
    )


def test_tabs_backslashes_and_line_breaks_in_values_arrive_unchanged(calling_list):
    data = 'ID,Phone,FirstName,Notes\nT1,3125550101,"a\tb","C:\\dir\\n ""x""\r\nnext"\n'
    run_import(calling_list, "escapes.csv", data)

    record = records(calling_list)["T1"]
    assert record.first_name == "a\tb"
    assert record.custom["Notes"] == 'C:\\dir\\n "x"\r\nnext'


def test_replace_updates_existing_records_and_keeps_their_history(calling_list):
    old = RecordFactory(calling_list=calling_list, external_id="R1", first_name="Old", city="Keep")
    same = DestinationFactory(record=old, position=0, phone_number="+13125550101")
    AttemptFactory(record=old, destination=same, skill__business_unit=calling_list.business_unit)
    Destination.objects.filter(pk=same.pk).update(attempts=2)
    gone = DestinationFactory(record=old, position=1, phone_number="+13125550199")
    data = "ID,Phone,FirstName\nR1,3125550101,New\nR2,3125550102,Two\nR2,3125550103,Last\n"
    job = run_import(calling_list, "replace.csv", data, mode=UploadJob.Mode.REPLACE)

    assert (job.rows_valid, job.rows_invalid) == (3, 0)
    got = records(calling_list)
    assert got["R1"].pk == old.pk
    assert (got["R1"].first_name, got["R1"].city) == ("New", "Keep")  # unmapped fields stay
    assert got["R1"].upload_job_id == job.pk
    # The unchanged number keeps its attempts; the number no longer given is removed.
    assert list(got["R1"].destinations.values_list("phone_number", "attempts")) == [
        ("+13125550101", 2)
    ]
    assert not Destination.objects.filter(pk=gone.pk).exists()
    # A repeated ID: the later row's values win.
    assert got["R2"].first_name == "Last"
    assert numbers(got["R2"])[0][2] == "+13125550103"
    assert "appears again on row 4" in report(job)[0]["reason"]


def test_replace_keeps_a_texted_number_that_is_gone_as_final(calling_list):
    old = RecordFactory(calling_list=calling_list, external_id="R1")
    DestinationFactory(record=old, position=0, phone_number="+13125550101")
    texted = DestinationFactory(record=old, position=1, phone_number="+13125550199")
    AttemptFactory(record=old, destination=texted, skill__business_unit=calling_list.business_unit)
    run_import(
        calling_list, "replace.csv", "ID,Phone\nR1,3125550101\n", mode=UploadJob.Mode.REPLACE
    )

    texted.refresh_from_db()
    assert texted.is_final and texted.final_reason.startswith("Removed by upload")


def test_batch_expiration_is_overridden_by_an_expiration_column(calling_list):
    data = "ID,Phone,ExpirationDate\nX1,3125550101,2027-06-30\nX2,3125550102,\n"
    job = run_import(calling_list, "exp.csv", data, expires_on=dt.date(2027, 1, 31))

    got = records(calling_list)
    assert got["X1"].expires_on == dt.date(2027, 6, 30)
    assert got["X2"].expires_on == dt.date(2027, 1, 31)
    assert job.rows_flagged == 0


def test_an_expiration_in_the_past_is_flagged(calling_list):
    job = run_import(calling_list, "exp.csv", "ID,Phone,exp\nX1,3125550101,2020-01-01\n")

    assert (job.rows_valid, job.rows_flagged) == (1, 1)
    assert "already past" in report(job)[0]["reason"]


# --- The report, blank rows, counts --------------------------------------------------------


def test_the_report_lists_bad_rows_with_number_reason_and_values(calling_list):
    data = "ID,Phone,FirstName\nB1,3125550101,Ok\n,3125550102,NoId\n\n,,\nB3,,Nobody\nB4,abc,Bad\n"
    job = run_import(calling_list, "bad.csv", data)

    # Blank lines are not rows; numbering follows the file as a spreadsheet shows it.
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (4, 1, 3)
    assert report(job) == [
        {
            "row": "3",
            "outcome": "rejected",
            "reason": "ExternalId is empty: every record needs one.",
            "values": "ID=''",
        },
        {
            "row": "6",
            "outcome": "rejected",
            "reason": "No phone number: every phone column is empty.",
            "values": "Phone=''",
        },
        {
            "row": "7",
            "outcome": "rejected",
            "reason": "No valid phone number: PhoneNumber 'abc' is not a valid number.",
            "values": "Phone='abc'",
        },
    ]


def test_a_job_runs_once(calling_list):
    job = run_import(calling_list, "basic.csv")

    assert upload_job_run(job_id=job.pk) is None
    assert Record.objects.filter(calling_list=calling_list).count() == 2


def test_worker_processes_give_the_same_result(calling_list, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 7)
    rows = "\n".join(f"M{i},312555{i:04d},Name{i}" for i in range(100))
    data = f"ID,Phone,FirstName\n{rows}\nM5,3125550005,dup\nM200,12,bad\n"
    job = run_import(calling_list, "pool.csv", data, workers=2)

    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (102, 100, 2)
    assert [e["row"] for e in report(job)] == ["102", "103"]
    assert records(calling_list)["M42"].destinations.get().phone_number == "+13125550042"


def test_a_zone_with_the_same_clock_as_an_allowed_zone_is_stored_as_that_zone(calling_list, bu):
    bu.allowed_time_zones = ["America/Anchorage", "America/New_York"]
    bu.save()
    # phonenumbers names America/Juneau for 907 and America/Detroit for 313 numbers.
    job = run_import(calling_list, "twins.csv", "ID,Phone\nJ1,9072495703\nJ2,3135550123\n")

    got = records(calling_list)
    assert (got["J1"].time_zone, got["J2"].time_zone) == ("America/Anchorage", "America/New_York")
    assert job.rows_flagged == 0


def test_a_large_import_renews_the_tables_statistics_on_postgresql(calling_list, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("statistics of the query planner: PostgreSQL")

    def analyses() -> int:
        """ANALYZE runs on the records table so far (autovacuum's are counted apart)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # read the counters afresh
            cursor.execute(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'skills_record'"
            )
            return cursor.fetchone()[0]

    monkeypatch.setattr(service, "ANALYZE_AFTER_ROWS", 3)
    before = analyses()
    rows = "".join(f"S{i},312555{i:04d}\n" for i in range(3))
    job = run_import(calling_list, "stats.csv", f"ID,Phone\n{rows}")

    assert job.rows_valid == 3 and "analyze" in job.counts.timings
    assert analyses() == before + 1
    small = run_import(calling_list, "two.csv", "ID,Phone\nT1,3125559001\nT2,3125559002\n")
    assert small.rows_valid == 2 and analyses() == before + 1  # below the threshold: none
