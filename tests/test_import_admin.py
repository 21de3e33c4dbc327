"""The upload pages of the admin: upload, map the columns, watch progress, cancel, report."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from skills.models import CustomField, Record, UploadJob
from tests.factories import CallingListFactory, UploadJobFactory
from tests.test_import_service import FIXTURES, make_job


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


@pytest.fixture
def browser(client, staff_member):
    client.force_login(staff_member)
    return client


def upload(browser, calling_list, name, data=None, **fields):
    data = (FIXTURES / name).read_bytes() if data is None else data
    return browser.post(
        reverse("admin:skills_uploadjob_add"),
        {
            "calling_list": calling_list.pk,
            "file": SimpleUploadedFile(name, data),
            "mode": "append",
            "no_zone_policy": "reject",
            "default_time_zone": "",
            "expires_on": "",
            **fields,
        },
    )


def mapping_post(response_context_rows, **overrides):
    data = {}
    for row in response_context_rows:
        i = row["index"]
        data[f"field_{i}"] = row["choice"]
        data[f"name_{i}"] = row["custom_name"]
        data[f"type_{i}"] = row["type"]
    data.update(overrides)
    return data


def test_upload_map_and_import_from_the_admin(
    browser, calling_list, django_capture_on_commit_callbacks
):
    response = upload(browser, calling_list, "basic.csv")

    job = UploadJob.objects.get()
    mapping_url = reverse("admin:skills_uploadjob_mapping", args=[job.pk])
    assert response.status_code == 302 and response["Location"] == mapping_url
    assert job.status == UploadJob.Status.PENDING and job.original_name == "basic.csv"

    page = browser.get(mapping_url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "(312) 555-0123" in content  # the preview of the first rows
    rows = page.context["rows"]
    assert [(r["column"], r["choice"]) for r in rows[:4]] == [
        ("ExternalId", "ExternalId"),
        ("First Name", "FirstName"),
        ("last_name", "LastName"),
        ("Phone", "PhoneNumber"),
    ]
    visit = next(r for r in rows if r["column"] == "Visit Date")
    assert (visit["choice"], visit["custom_name"], visit["type"]) == (
        "__custom__",
        "VisitDate",
        "date",
    )

    # The user renames a custom field and ignores a column, then starts the import.
    i = visit["index"]
    balance = next(r for r in rows if r["column"] == "Balance")["index"]
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            mapping_url,
            mapping_post(rows, **{f"name_{i}": "Appointment", f"field_{balance}": ""}),
        )
    change_url = reverse("admin:skills_uploadjob_change", args=[job.pk])
    assert response.status_code == 302 and response["Location"] == change_url

    job.refresh_from_db()
    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_valid, job.rows_invalid) == (2, 1)
    assert Record.objects.get(external_id="A1").custom == {"Appointment": "2026-12-01"}
    assert list(CustomField.objects.values_list("name", flat=True)) == ["Appointment"]

    page = browser.get(change_url).content.decode()
    assert "Download the error report" in page
    progress = browser.get(reverse("admin:skills_uploadjob_progress", args=[job.pk])).json()
    assert progress["finished"] and progress["rows_valid"] == 2 and progress["percent"] == 100
    csv = browser.get(progress["report_url"])
    assert csv["Content-Disposition"].startswith('attachment; filename="basic-errors.csv"')
    assert b"No valid phone number" in b"".join(csv.streaming_content)


def test_the_mapping_page_refuses_a_mapping_without_a_phone(browser, calling_list):
    job = make_job(calling_list, "basic.csv", status=UploadJob.Status.PENDING)
    url = reverse("admin:skills_uploadjob_mapping", args=[job.pk])
    rows = browser.get(url).context["rows"]
    phones = {f"field_{r['index']}": "" for r in rows if r["column"] in ("Phone", "SMS")}

    response = browser.post(url, mapping_post(rows, **phones))

    assert response.status_code == 200
    assert "No phone column is mapped" in response.content.decode()
    job.refresh_from_db()
    assert job.status == UploadJob.Status.PENDING
    assert not Record.objects.exists()


def test_the_mapping_page_says_how_many_rows_with_thousands_separated(browser, calling_list):
    lines = ["ExternalId,Phone"] + [f"R{i},312-555-{i % 10_000:04d}" for i in range(1_234)]
    response = upload(browser, calling_list, "big.csv", data="\n".join(lines).encode())
    page = browser.get(response["Location"]).content.decode()
    assert "about 1,234 rows, 2 columns" in page


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("junk.csv", "not a text file"),
        ("latin1.csv", "not UTF-8"),
        ("empty.csv", "The submitted file is empty"),
        ("notes.pdf", "not supported"),
    ],
)
def test_a_bad_file_is_refused_on_the_upload_page_and_nothing_is_saved(
    browser, calling_list, name, message
):
    response = upload(browser, calling_list, name)

    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["file"])
    assert not UploadJob.objects.exists()


def test_the_default_zone_must_be_a_zone(browser, calling_list):
    response = upload(
        browser, calling_list, "basic.csv", no_zone_policy="default", default_time_zone="Mars"
    )

    assert response.status_code == 200
    assert "not a time zone" in str(response.context["adminform"].form.errors)


def test_progress_page_shows_the_running_job(browser, calling_list):
    job = UploadJobFactory(
        calling_list=calling_list,
        status=UploadJob.Status.RUNNING,
        rows_total=1000,
        rows_processed=250,
        rows_valid=240,
        rows_invalid=10,
    )
    page = browser.get(reverse("admin:skills_uploadjob_change", args=[job.pk])).content.decode()

    assert 'id="upload-progress"' in page and "uploadjob_progress.js" in page
    assert "Cancel the import" in page
    data = browser.get(reverse("admin:skills_uploadjob_progress", args=[job.pk])).json()
    assert (data["percent"], data["finished"], data["status"]) == (25, False, "running")


def test_cancel_a_running_job_asks_the_importer_to_stop(browser, calling_list):
    job = UploadJobFactory(calling_list=calling_list, status=UploadJob.Status.RUNNING)
    url = reverse("admin:skills_uploadjob_cancel", args=[job.pk])

    assert browser.get(url).status_code == 405
    browser.post(url)

    job.refresh_from_db()
    assert job.cancel_requested and job.status == UploadJob.Status.RUNNING


def test_cancel_a_queued_job_means_it_never_runs(browser, calling_list):
    job = UploadJobFactory(calling_list=calling_list, status=UploadJob.Status.QUEUED)
    browser.post(reverse("admin:skills_uploadjob_cancel", args=[job.pk]))

    job.refresh_from_db()
    assert job.status == UploadJob.Status.CANCELLED


def test_another_business_units_upload_pages_are_404(browser, other_bu):
    theirs = UploadJobFactory(
        calling_list=CallingListFactory(business_unit=other_bu), status=UploadJob.Status.PENDING
    )
    for name in ("mapping", "progress", "report", "cancel"):
        url = reverse(f"admin:skills_uploadjob_{name}", args=[theirs.pk])
        response = browser.post(url) if name == "cancel" else browser.get(url)
        assert response.status_code == 404, name
    theirs.refresh_from_db()
    assert theirs.status == UploadJob.Status.PENDING


def test_the_calling_list_page_links_to_upload_a_file(browser, calling_list):
    page = browser.get(reverse("admin:skills_callinglist_change", args=[calling_list.pk]))

    add = reverse("admin:skills_uploadjob_add") + f"?calling_list={calling_list.pk}"
    assert add in page.content.decode()
    form = browser.get(add).context["adminform"].form
    assert str(form.initial["calling_list"]) == str(calling_list.pk)
