"""The calling-list upload pages in a real browser: upload, map the columns, watch the import
run, download the error report, cancel."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.urls import reverse

from skills.models import CallingList, CustomField, Destination, Record, UploadJob
from tests.factories import CallingListFactory, UploadJobFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

# What an administrator exports from a CRM: the ID under an alias, a second number column no alias
# matches, a date column, one bad number, one repeated ID.
LIST_CSV = (
    "id,FName,LName,Phone,Alt number,Zip,Visit\n"
    "P-1,Ada,Lovelace,(312) 555-0123,312-555-0124,60601,2027-03-01\n"
    "P-2,Bob,Brown,+12125550100,,10001,2027-03-02\n"
    "P-3,Cy,Chan,555,,60601,2027-03-03\n"
    "P-1,Dee,Dupe,(312) 555-0199,,60601,2027-03-04\n"
    "P-4,Eve,Ng,415-555-0142,(415) 555-0143,94103,2027-03-05\n"
)


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Spring reminders")


def _choose_list(page, name: str) -> None:
    """Django's autocomplete (select2): open it, type, pick the match."""
    page.click("#id_calling_list + .select2 .select2-selection")
    page.fill(".select2-search__field", name[:6])
    page.click(f".select2-results__option:has-text('{name}')")


def _field_select(page, column: str):
    return page.get_by_label(f"Field for {column}", exact=True)


def test_upload_map_import_and_download_the_report(page, login, staff_member, calling_list):
    login(staff_member)
    page.goto(reverse("admin:skills_uploadjob_add"))
    _choose_list(page, calling_list.name)
    page.set_input_files(
        "#id_file",
        files=[{"name": "spring.csv", "mimeType": "text/csv", "buffer": LIST_CSV.encode()}],
    )
    # One way on from here: the mapping page.
    expect(page.locator(".submit-row input[type=submit]")).to_have_count(1)
    expect(page.locator("input[name=_save]")).to_have_value("Upload and map the columns")
    page.click("input[name=_save]")

    # The mapping page proposes what the headers say and shows the first rows.
    page.wait_for_url("**/mapping/")
    expect(page.locator(".upload-preview")).to_contain_text("(312) 555-0123")
    expect(page.locator("#content-main")).to_contain_text("about 5 rows, 7 columns")
    assert _field_select(page, "id").input_value() == "ExternalId"
    assert _field_select(page, "FName").input_value() == "FirstName"
    assert _field_select(page, "Phone").input_value() == "PhoneNumber"
    assert _field_select(page, "Alt number").input_value() == "__custom__"
    assert page.get_by_label("Type for Alt number").input_value() == "phone"
    assert page.get_by_label("Custom field name for Visit").input_value() == "Visit"
    assert page.get_by_label("Type for Visit").input_value() == "date"

    # The user makes the alternative number the record's SMS number, then starts the import.
    _field_select(page, "Alt number").select_option("SMSPhoneNumber")
    page.click("input[value='Start the import']")

    # Back on the job's page; the test settings run the import at once.
    page.wait_for_url("**/change/")
    expect(page.locator("#upload-status-text")).to_have_text("Completed")
    expect(page.locator("#upload-counts")).to_contain_text("5 of 5 rows: 3 valid, 2 invalid")
    # A finished import's settings are history: nothing on its page to save.
    expect(page.locator("input[name=_save]")).to_have_count(0)
    report = page.locator("#upload-report")
    expect(report).to_be_visible()
    with page.expect_download() as download:
        report.click()
    assert download.value.suggested_filename == "spring-errors.csv"
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    by_row = {row[0]: row for row in rows[1:]}
    assert set(by_row) == {"4", "5"}  # file rows: the header is row 1
    assert "phone" in by_row["4"][2].lower() and "555" in by_row["4"][3]
    assert "P-1" in by_row["5"][3] and "row 2" in by_row["5"][2]

    # What was imported: the Alt number column became each record's second number.
    records = {r.external_id: r for r in Record.objects.filter(calling_list=calling_list)}
    assert set(records) == {"P-1", "P-2", "P-4"}
    numbers = Destination.objects.filter(record=records["P-4"]).order_by("position")
    assert [(d.source_field, d.phone_number) for d in numbers] == [
        ("PhoneNumber", "+14155550142"),
        ("SMSPhoneNumber", "+14155550143"),
    ]
    assert records["P-1"].custom == {"Visit": "2027-03-01"}
    fields = CustomField.objects.filter(calling_list=calling_list)
    assert {(f.name, f.field_type) for f in fields} == {("Visit", "date")}


def test_a_file_that_is_not_a_list_is_refused_on_the_upload_form(
    page, login, staff_member, calling_list
):
    login(staff_member)
    page.goto(reverse("admin:skills_uploadjob_add"))
    _choose_list(page, calling_list.name)
    page.set_input_files(
        "#id_file",
        files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": bytes(range(256)) * 8}],
    )
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_be_visible()
    assert "/add/" in page.url
    assert not UploadJob.objects.exists()
    assert not Record.objects.exists()
    assert CallingList.objects.get(pk=calling_list.pk).records.count() == 0


def test_the_progress_panel_follows_a_running_import_and_cancels_it(
    page, login, staff_member, calling_list
):
    job = UploadJobFactory(
        calling_list=calling_list,
        status=UploadJob.Status.RUNNING,
        rows_total=1_000,
        rows_processed=0,
    )
    login(staff_member)
    page.goto(reverse("admin:skills_uploadjob_change", args=[job.pk]))
    expect(page.locator("#upload-status-text")).to_have_text("Running")

    # The worker moves on: the panel shows it without a reload.
    UploadJob.objects.filter(pk=job.pk).update(rows_processed=400, rows_valid=390, rows_invalid=10)
    expect(page.locator("#upload-counts")).to_contain_text(
        "400 of 1,000 rows: 390 valid, 10 invalid"
    )
    expect(page.locator("#upload-bar")).to_have_attribute("value", "40")

    page.click("#upload-cancel")
    page.wait_for_url("**/change/")
    job.refresh_from_db()
    assert job.cancel_requested and job.status == UploadJob.Status.RUNNING
    expect(page.locator("#upload-cancel")).to_be_disabled()

    # The worker stops at its next batch; the page reloads itself and says so.
    UploadJob.objects.filter(pk=job.pk).update(
        status=UploadJob.Status.CANCELLED, message="Cancelled: nothing was imported."
    )
    expect(page.locator("#upload-status-text")).to_have_text("Cancelled")
    expect(page.locator("#upload-message")).to_contain_text("nothing was imported")
    expect(page.locator("#upload-cancel")).to_have_count(0)
