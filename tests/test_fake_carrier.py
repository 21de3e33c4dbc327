"""The fake carrier itself: it answers, validates, lists and logs as Twilio does."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from django.core.management import call_command

from messaging.fake_carrier import FakeCarrier
from tests.backends import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    OUR_NUMBER,
)


@pytest.fixture
def carrier():
    with FakeCarrier(auth_token=AUTH_TOKEN, callback_delay=0.02, seed=1) as carrier:
        yield carrier


# --- the fake carrier itself ---------------------------------------------------------------


def http(method: str, url: str, form: dict | None = None) -> tuple[int, dict]:
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def messages_url(carrier: FakeCarrier) -> str:
    return f"{carrier.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def test_fake_carrier_answers_in_twilios_shapes(carrier):
    form = {"To": "+13122000001", "From": OUR_NUMBER, "Body": "Hi"}
    status, created = http("POST", messages_url(carrier), form)
    recorded = json.loads((FIXTURES / "message_create_201.json").read_text())
    assert status == 201
    assert created.keys() == recorded.keys()
    assert created["sid"].startswith("SM") and len(created["sid"]) == 34
    assert created["num_segments"] == "1"
    assert created["date_created"].endswith("+0000")

    status, listed = http("GET", messages_url(carrier) + "?To=%2B13122000001")
    recorded = json.loads((FIXTURES / "message_list_200.json").read_text())
    assert status == 200
    assert listed.keys() == recorded.keys()
    assert [m["sid"] for m in listed["messages"]] == [created["sid"]]

    status, fetched = http("GET", messages_url(carrier).replace(".json", f"/{created['sid']}.json"))
    assert (status, fetched["sid"]) == (200, created["sid"])

    for number, fixture in (
        ("12345", "error_400_21211.json"),
        ("+15005550004", "error_400_21610.json"),
    ):
        status, error = http("POST", messages_url(carrier), {**form, "To": number})
        recorded = json.loads((FIXTURES / fixture).read_text())
        assert (status, error.keys(), error["code"]) == (400, recorded.keys(), recorded["code"])


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "+13122000001", "From": OUR_NUMBER}, 21602),
        ({"To": "+13122000001", "Body": "Hi"}, 21603),
        ({"To": "+13122000001", "From": OUR_NUMBER, "Body": "x" * 1601}, 21617),
        ({"To": "3122000001", "From": OUR_NUMBER, "Body": "Hi"}, 21211),
        ({"To": "+1312200", "From": OUR_NUMBER, "Body": "Hi"}, 21211),
    ],
)
def test_fake_carrier_validates_like_twilio(carrier, form, code):
    status, error = http("POST", messages_url(carrier), form)
    assert (status, error["code"]) == (400, code)
    assert carrier.received == []


def test_fake_carrier_lists_newest_first_by_page_and_date_sent(carrier):
    for n in range(3):
        http(
            "POST",
            messages_url(carrier),
            {"To": "+13122000001", "From": OUR_NUMBER, "Body": str(n)},
        )
    status, page = http("GET", messages_url(carrier) + "?To=%2B13122000001&PageSize=2")
    assert [m["body"] for m in page["messages"]] == ["2", "1"]
    assert "Page=1" in page["next_page_uri"]
    _, last = http("GET", carrier.url + page["next_page_uri"])
    assert [m["body"] for m in last["messages"]] == ["0"]
    assert last["next_page_uri"] is None
    # Not sent yet (still queued): like Twilio, no date_sent, so no DateSent match.
    carrier.callback_delay = 3600
    http("POST", messages_url(carrier), {"To": "+13122000009", "From": OUR_NUMBER, "Body": "q"})
    _, none = http("GET", messages_url(carrier) + "?To=%2B13122000009&DateSent%3E=2000-01-01")
    assert none["messages"] == []


def test_fake_carrier_logs_every_accepted_text_and_counts_duplicates(tmp_path):
    log = tmp_path / "carrier.jsonl"
    with FakeCarrier(log=log) as carrier:
        form = {"To": "+13122000001", "From": OUR_NUMBER, "Body": "Same"}
        http("POST", messages_url(carrier), form)
        http("POST", messages_url(carrier), form)
        http("POST", messages_url(carrier), {**form, "To": "12345"})
        assert carrier.duplicates() == [("+13122000001", "Same")]
        assert carrier.stats["duplicates"] == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["to"], x["body"], x["from"]) for x in lines] == [
        ("+13122000001", "Same", OUR_NUMBER)
    ] * 2
    assert {"sid", "time", "messaging_service_sid"} <= lines[0].keys()


def test_fake_carrier_checks_basic_auth_when_asked():
    with FakeCarrier(auth_token=AUTH_TOKEN, check_auth=True) as carrier:
        status, error = http("POST", messages_url(carrier), {"To": "+13122000001", "Body": "x"})
        assert (status, error["code"]) == (401, 20003)


def test_fake_carrier_command_prints_its_url_and_a_summary():
    out = io.StringIO()
    call_command("fake_carrier", port=0, duration=0.3, json=True, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "listening"
    assert lines[0]["url"].startswith("http://127.0.0.1:")
    assert lines[-1]["event"] == "stopped"
    assert lines[-1]["duplicates"] == 0
