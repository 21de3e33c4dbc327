"""The template page in a real browser: the live counter, culprits, syntax and merged preview."""

from __future__ import annotations

import random
import re
from dataclasses import asdict

import pytest
from django.urls import reverse

from messaging import segments
from skills.models import FieldType
from tests.factories import (
    CallingListFactory,
    CustomFieldFactory,
    MessageTemplateFactory,
    RecordFactory,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def _change_url(template) -> str:
    return reverse("admin:messaging_messagetemplate_change", args=[template.pk])


def _stats(page) -> dict[str, object]:
    live = page.locator("#te-live")
    read = {
        name: live.locator(f'[data-te="{name}"]').inner_text()
        for name in ("encoding", "characters", "units", "segments", "remaining")
    }
    return {k: v if k == "encoding" else int(v.replace(",", "")) for k, v in read.items()}


def _expected_stats(text: str) -> dict[str, object]:
    info = segments.analyse(text)
    return {
        "encoding": info.encoding,
        "characters": info.characters,
        "units": info.units,
        "segments": info.segments,
        "remaining": info.remaining,
    }


def _expect_counter(page, text: str) -> None:
    """The counter shows what segments.analyse() says about ``text``."""
    expected = _expected_stats(text)
    expect(page.locator('#te-live [data-te="characters"]')).to_have_text(
        f"{expected['characters']:,}"
    )
    assert _stats(page) == expected


# --- The JavaScript port of the segment counter against segments.py -------------------------


def _sample_strings() -> list[str]:
    """Boundary cases, then random strings around the part sizes, in every mix of characters."""
    boundaries = [
        "",
        "a",
        "a" * 160,
        "a" * 161,
        "a" * 306,
        "a" * 307,
        "a" * 159 + "€",  # 161 septets: two parts
        "€" * 80,
        "€" * 81,
        "a" * 152 + "€" + "a",  # the escape pair may not straddle parts
        "a" * 305 + "€",
        "€" * 76 + "a",
        "{FirstName|there} ~ [x] \\ ^ |" * 6,
        "\f\r\n",
        "\x1b",  # the escape code itself is not GSM
        "“" * 70,
        "“" * 71,
        "“" * 134,
        "“" * 135,
        "a" * 69 + "😀",
        "a" * 66 + "😀" + "a" * 10,  # the surrogate pair may not straddle parts
        "😀" * 35,
        "😀" * 36,
        "Hi “there” – café, 中文 and 😀👍🏽",
        "tab\there\u00a0nbsp\u200bzw",
    ]
    gsm = list("abcdefghijklmnopqrstuvwxyz ABC0123456789.,!?@£$¥èéùìòÇØøÅåΔ_ΦΓÆæßÉÄÖÑÜ§¿äöñüà\n")
    extension = list(segments.GSM_EXTENSION)
    other = ["“", "”", "’", "–", "…", "á", "ç", "ł", "中", "\u00a0", "😀", "👍🏽", "𝄞"]
    rng = random.Random(2026)
    strings = []
    for _ in range(400):
        length = rng.choice(
            [rng.randint(0, 20), rng.randint(60, 80), rng.randint(130, 170), rng.randint(290, 330)]
        )
        mode = rng.choice(["gsm", "gsm+ext", "ucs2", "mixed"])
        pool = {
            "gsm": gsm,
            "gsm+ext": gsm * 3 + extension,
            "ucs2": other,
            "mixed": gsm * 20 + extension * 3 + other,
        }[mode]
        strings.append("".join(rng.choice(pool) for _ in range(length)))
    return boundaries + strings


def test_javascript_counter_matches_segments_py(page, login, staff_member, bu):
    template = MessageTemplateFactory(business_unit=bu)
    login(staff_member)
    page.goto(_change_url(template))
    strings = _sample_strings()
    results = page.evaluate(
        """(strings) => {
            const config = JSON.parse(
                document.getElementById("template-editor-config").textContent);
            const editor = window.pcsmsTemplateEditor;
            const tables = editor.makeTables(config.encoding);
            return strings.map((text) => [
                editor.analyse(text, tables),
                editor.replaceLookalikes(text, config.lookalikes),
            ]);
        }""",
        strings,
    )
    assert len(results) == len(strings)
    for text, (analysis, replaced) in zip(strings, results, strict=True):
        expected = asdict(segments.analyse(text))
        expected["culprits"] = list(expected["culprits"])
        assert analysis == expected, f"{text!r}"
        assert replaced == segments.gsm_lookalikes(text), f"{text!r}"


# --- Typing into the page -------------------------------------------------------------------


@pytest.fixture
def clinic(bu):
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    CustomFieldFactory(calling_list=calling_list, name="AppointmentDate", field_type=FieldType.DATE)
    for n in range(3):
        RecordFactory(calling_list=calling_list, external_id=f"P-{n:03d}", first_name="Ada")
    RecordFactory(
        calling_list=calling_list,
        external_id="VIP-42",
        first_name="Grace",
        last_name="Hopper",
        custom={"AppointmentDate": "2026-12-24"},
    )
    return calling_list


def test_typing_updates_the_counter_the_problems_and_the_merged_preview(
    page, login, staff_member, bu, clinic
):
    template = MessageTemplateFactory(business_unit=bu, body="Hi {FirstName|there}")
    login(staff_member)
    page.goto(_change_url(template))
    body = page.locator("#id_body")
    merged = page.locator('[data-te="merged"]')

    # On load: the saved text, counted ({, | and } are extension characters: 2 septets each).
    _expect_counter(page, "Hi {FirstName|there}")
    assert _stats(page)["units"] == 23
    expect(merged).to_have_text("Hi Ada")  # sample values
    expect(page.locator('[data-te="problems-ok"]')).to_be_visible()

    # Typing: the counter follows every keystroke, the preview follows the text.
    body.fill("")
    body.press_sequentially("Hello {FirstName}, see you {AppointmentDate}.")
    text = "Hello {FirstName}, see you {AppointmentDate}."
    _expect_counter(page, text)
    expect(merged).to_have_text(re.compile(r"^Hello Ada, see you 20\d\d-\d\d-\d\d\.$"))

    # Past 160 septets: two parts of 153.
    page.keyboard.insert_text(" " + "x" * 120)
    text += " " + "x" * 120
    _expect_counter(page, text)
    assert _stats(page)["segments"] == 2

    # A variable from the list goes in at the cursor.
    body.press("End")
    page.locator('.te-var[data-name="LastName"]').click()
    text += "{LastName}"
    expect(body).to_have_value(text)
    _expect_counter(page, text)

    # A curly quote forces UCS-2 and is named; one click puts a GSM look-alike in its place.
    body.press("End")
    body.press_sequentially(" “ok”")
    text += " “ok”"
    _expect_counter(page, text)
    assert _stats(page)["encoding"] == "UCS-2"
    culprits = page.locator('[data-te="culprits-box"]')
    expect(culprits).to_be_visible()
    expect(culprits.locator(".te-glyph")).to_have_text(["“", "”"])
    page.get_by_role("button", name="Replace with GSM look-alikes").click()
    text = text.replace("“", '"').replace("”", '"')
    expect(body).to_have_value(text)
    _expect_counter(page, text)
    assert _stats(page)["encoding"] == "GSM-7"
    expect(culprits).to_be_hidden()

    # A syntax problem is reported live, with its place, and stops the preview.
    body.press("End")
    body.press_sequentially(" {Nope")
    problems = page.locator('[data-te="problems"] li')
    expect(problems).to_have_count(1)
    expect(problems.first).to_contain_text("Unclosed '{' at position")
    expect(page.locator('[data-te="merged-note"]')).to_contain_text("No preview until")
    for _ in range(3):
        body.press("Backspace")
    body.press_sequentially("ame}")
    expect(problems.first).to_contain_text("Unknown field 'Name'")
    expect(merged).to_be_visible()


def test_preview_with_a_chosen_record(page, login, staff_member, bu, clinic):
    template = MessageTemplateFactory(
        business_unit=bu, body="Hi {FirstName|there}, see you on {AppointmentDate|soon}."
    )
    login(staff_member)
    page.goto(_change_url(template))
    merged = page.locator('[data-te="merged"]')
    expect(merged).to_contain_text("Hi Ada")

    page.get_by_label("a record of a calling list").check()
    expect(page.locator("#te-list")).to_have_value(str(clinic.pk))
    # The first record is chosen by itself; it has no appointment: the fallback shows.
    expect(merged).to_have_text("Hi Ada, see you on soon.")

    page.locator("#te-search").fill("vip-42")
    expect(page.locator("#te-record option")).to_have_count(1)
    expect(merged).to_have_text("Hi Grace, see you on 2026-12-24.")
    merged_text = "Hi Grace, see you on 2026-12-24."
    info = segments.analyse(merged_text)
    expect(page.locator('[data-te="merged-figures"]')).to_have_text(
        f"{info.characters} characters · 1 segment · {info.remaining} left in this segment"
    )
    expect(page.locator('[data-te="merged-note"]')).to_contain_text("VIP-42 Grace Hopper")

    # The values used are shown, read-only.
    value = page.locator('.te-value:has-text("{FirstName}") input')
    expect(value).to_have_value("Grace")
    expect(value).to_have_attribute("readonly", "")

    # Back to sample values: typed values merge, and an emptied one shows the fallback.
    page.get_by_label("sample values").check()
    sample = page.locator('.te-value:has-text("{FirstName}") input')
    expect(sample).to_be_editable()
    sample.fill("")
    expect(merged).to_contain_text("Hi there, see you on")


def test_add_page_offers_the_chosen_business_units_fields(page, login, staff_member, bu, clinic):
    login(staff_member)
    page.goto(reverse("admin:messaging_messagetemplate_add"))
    chip = page.locator('.te-var[data-name="AppointmentDate"]')
    expect(page.locator('.te-var[data-name="FirstName"]')).to_be_visible()
    expect(chip).to_have_count(0)
    page.select_option("#id_business_unit", str(bu.pk))
    expect(chip).to_be_visible()
    page.locator("#id_body").press_sequentially("On {AppointmentDate}")
    expect(page.locator('[data-te="problems-ok"]')).to_be_visible()


def test_the_channel_shows_the_email_parts_or_the_segment_count(page, login, staff_member, bu):
    login(staff_member)
    page.goto(reverse("admin:messaging_messagetemplate_add"))
    subject = page.locator(".form-row.field-subject")
    html = page.locator(".form-row.field-html_body")
    counter = page.locator("#te-live .te-stats")
    expect(counter).to_be_visible()
    expect(subject).to_be_hidden()
    expect(html).to_be_hidden()

    page.select_option("#id_channel", "email")
    expect(subject).to_be_visible()
    expect(counter).to_be_hidden()  # an email has no segments
    page.locator("fieldset.collapse summary, fieldset.collapse h2 a").first.click()
    expect(html).to_be_visible()

    page.select_option("#id_channel", "sms")
    expect(counter).to_be_visible()
    expect(html).to_be_hidden()
    page.select_option("#id_channel", "email")
    page.fill("#id_subject", "Hello")
    page.select_option("#id_channel", "sms")
    expect(subject).to_be_visible()  # something typed there stays in sight, with its error


def test_an_email_templates_page_has_no_segment_count(page, login, staff_member, bu):
    template = MessageTemplateFactory(
        business_unit=bu, channel="email", subject="Hi {FirstName|there}", html_body="<p>Hi</p>"
    )
    login(staff_member)
    page.goto(_change_url(template))
    expect(page.locator("#id_subject")).to_have_value("Hi {FirstName|there}")
    expect(page.locator("#te-live .te-stats")).to_be_hidden()
