"""Message templates: the parser, the merge and the save-time validation an administrator sees."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from types import MappingProxyType

import pytest

from messaging.templating import (
    SYSTEM_FIELDS,
    CompiledTemplate,
    TemplateProblem,
    TemplateSyntaxError,
    parse,
    validate,
)

KNOWN = [*SYSTEM_FIELDS, "AppointmentDate", "Balance"]


# --- Rendering -------------------------------------------------------------------------------


def test_renders_fields_into_the_text() -> None:
    template = parse("Hi {FirstName}, see you on {AppointmentDate} in {City}.")
    assert template.variables == ("FirstName", "AppointmentDate", "City")
    values = {"FirstName": "Maria", "AppointmentDate": "March 4", "City": "Austin"}
    assert template.render(values) == "Hi Maria, see you on March 4 in Austin."


def test_lookup_ignores_case_on_both_sides() -> None:
    template = parse("{firstname} {LASTNAME} {City}")
    assert (
        template.render({"FIRSTNAME": "Ann", "lastName": "Lee", "city": "Reno"}) == "Ann Lee Reno"
    )


def test_render_lower_is_the_fast_path_for_lowercase_keys() -> None:
    template = parse("Hi {FirstName|there} from {City}")
    assert template.render_lower({"firstname": "Bo", "city": "Oslo"}) == "Hi Bo from Oslo"
    # The fast path does not lowercase: a mixed-case key is simply not found.
    assert template.render_lower({"FirstName": "Bo", "city": "Oslo"}) == "Hi there from Oslo"


def test_render_handles_many_key_layouts_and_any_mapping() -> None:
    template = parse("{FirstName|there} {Zip}")
    for index in range(200):
        key = "".join(c.upper() if (index >> i) & 1 else c for i, c in enumerate("firstname"))
        record = {f"Extra{index}": 1, key: f"N{index}", "ZIP": index}
        assert template.render(record) == f"N{index} {index}"
    assert template.render(MappingProxyType({"zip": "1"})) == "there 1"


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_fallback_replaces_empty_values(value: object) -> None:
    assert parse("Hi {FirstName|there}!").render({"FirstName": value}) == "Hi there!"


def test_fallback_replaces_a_missing_field_and_no_fallback_inserts_nothing() -> None:
    assert parse("Hi {FirstName|there}!").render({}) == "Hi there!"
    assert parse("Hi {FirstName}!").render({}) == "Hi !"
    assert parse("Hi {FirstName}!").render({"FirstName": None}) == "Hi !"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (False, "False"),
        (Decimal("12.50"), "12.50"),
        (dt.date(2025, 3, 4), "2025-03-04"),
        (dt.datetime(2025, 3, 4, 9, 30), "2025-03-04T09:30:00"),
        (dt.time(9, 30), "09:30:00"),
        (" Maria ", " Maria "),
    ],
)
def test_values_are_turned_into_text(value: object, text: str) -> None:
    # Falsy but meaningful values such as 0 are values, not blanks.
    assert parse("[{Value|none}]").render({"Value": value}) == f"[{text}]"


def test_fallback_is_plain_text_kept_as_written() -> None:
    template = parse("{FirstName| dear customer | friend}")
    assert template.render({}) == " dear customer | friend"


def test_spaces_inside_the_braces_are_ignored() -> None:
    assert parse("{ FirstName |there}").render({"firstname": "Al"}) == "Al"
    assert parse("{ FirstName |there}").variables == ("FirstName",)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{", "{"),
        ("}}", "}"),
        ("{{FirstName}}", "{FirstName}"),
        ("{{{FirstName}}}", "{Bo}"),
        ("a {{b}} c {FirstName} }}{{", "a {b} c Bo }{"),
        ("no variables at all", "no variables at all"),
        ("", ""),
    ],
)
def test_doubled_braces_are_literal(body: str, expected: str) -> None:
    assert parse(body).render({"FirstName": "Bo"}) == expected


def test_a_template_that_is_one_variable() -> None:
    assert parse("{FirstName}").render({"firstname": "Bo"}) == "Bo"


def test_variables_are_unique_ignoring_case_in_order_as_first_written() -> None:
    template = parse("{City} {firstName} {FIRSTNAME|x} {Zip} {city}")
    assert template.variables == ("City", "firstName", "Zip")
    assert template.render({"FirstName": "", "city": "Rome"}) == "Rome  x  Rome"


def test_template_text_is_never_code() -> None:
    # Quotes, backslashes and Python syntax in literals and fallbacks must come out verbatim.
    body = "'''\"\"\" \\n {FirstName|'); __import__('os') #} \\ f\"{{x}}\" \n end"
    assert parse(body).render({}) == "'''\"\"\" \\n '); __import__('os') # \\ f\"{x}\" \n end"


def test_parse_is_cached_and_compiled_templates_are_reusable() -> None:
    first = parse("Hi {FirstName}")
    assert parse("Hi {FirstName}") is first
    assert isinstance(first, CompiledTemplate)
    assert [first.render({"firstname": n}) for n in ("A", "B")] == ["Hi A", "Hi B"]


# --- Syntax errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "start", "position", "line", "column"),
    [
        ("Hello {FirstName", "Unclosed '{' at position 6 (line 1, column 7)", 6, 1, 7),
        ("Hi {a {FirstName}", "Unclosed '{' at position 3 (line 1, column 4)", 3, 1, 4),
        ("Hi {FirstName\n}", "Unclosed '{' at position 3 (line 1, column 4)", 3, 1, 4),
        ("Hi}", "Unmatched '}' at position 2 (line 1, column 3)", 2, 1, 3),
        ("{{FirstName}", "Unmatched '}' at position 11 (line 1, column 12)", 11, 1, 12),
        ("Hi {}", "Empty variable '{}' at position 3 (line 1, column 4)", 3, 1, 4),
        ("Hi {|x}", "Empty variable '{|x}' at position 3", 3, 1, 4),
        ("Hi\n{First Name}", "Invalid variable name 'First Name' at position 3 (line 2", 3, 2, 1),
        (
            "a\nbb\n {9lives}",
            "Invalid variable name '9lives' at position 6 (line 3, column 2)",
            6,
            3,
            2,
        ),
        ("{Prénom}", "Invalid variable name 'Prénom'", 0, 1, 1),
    ],
)
def test_syntax_errors_say_what_and_where(
    body: str, start: str, position: int, line: int, column: int
) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse(body)
    error = caught.value
    assert str(error).startswith(start)
    assert (error.position, error.line, error.column) == (position, line, column)
    assert isinstance(error, ValueError)


def test_error_messages_tell_how_to_fix() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"add '\}' or write '\{\{' for a literal brace"):
        parse("50% off {today")
    with pytest.raises(TemplateSyntaxError, match=r"write '\}\}' for a literal brace"):
        parse("smile :}")


# --- Validation ------------------------------------------------------------------------------


def test_a_good_template_has_no_problems() -> None:
    assert validate("Hi {firstname|there}, due {AppointmentDate}. {{STOP}}", KNOWN) == []


def test_unknown_field_gets_a_suggestion() -> None:
    [problem] = validate("Hi {FristName}!", KNOWN)
    assert problem == TemplateProblem(
        "Unknown field 'FristName' at position 3 (line 1, column 4): did you mean 'FirstName'?",
        3,
        1,
        4,
        "unknown_field",
    )


def test_suggestion_ignores_case_and_uses_the_known_spelling() -> None:
    [problem] = validate("{appointmentdat}", KNOWN)
    assert problem.message.endswith("did you mean 'AppointmentDate'?")


def test_unknown_field_without_a_near_match_says_so() -> None:
    [problem] = validate("{Xyzzy}", KNOWN)
    assert "did you mean" not in problem.message
    assert problem.message.startswith("Unknown field 'Xyzzy' at position 0")


def test_every_problem_is_reported_in_body_order() -> None:
    body = "{Frist} } {Zip} {} {Ctiy} {open"
    problems = validate(body, KNOWN)
    assert [(p.code, p.position) for p in problems] == [
        ("unknown_field", 0),
        ("syntax", 8),
        ("syntax", 16),
        ("unknown_field", 19),
        ("syntax", 26),
    ]
    assert "did you mean 'City'?" in problems[3].message


def test_known_fields_decide_what_is_unknown() -> None:
    assert validate("{Balance}", KNOWN) == []
    assert [p.code for p in validate("{Balance}", SYSTEM_FIELDS)] == ["unknown_field"]


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_empty_body_is_a_problem(body: str) -> None:
    [problem] = validate(body, KNOWN)
    assert problem.code == "empty"
    assert problem.position is None


def test_over_length_body_is_a_problem() -> None:
    assert validate("a" * 1600, KNOWN) == []
    [problem] = validate("a" * 1601, KNOWN)
    assert problem.code == "too_long"
    assert problem.position == 1600
    assert problem.message.startswith("The message is 1,601 characters; the limit is 1,600.")
    assert [p.code for p in validate("ab {Zip}", KNOWN, max_length=5)] == ["too_long"]


def test_system_fields() -> None:
    assert SYSTEM_FIELDS == (
        "ExternalId",
        "FirstName",
        "LastName",
        "Address",
        "City",
        "State",
        "Zip",
        "TimeZone",
        "Priority",
        "Score",
        "Customer1",
        "Customer2",
        "ExpirationDate",
        "PhoneNumber",
        "SMSPhoneNumber",
        "Email",
    )


# --- Randomized properties -------------------------------------------------------------------

TEXT_POOL = "ab Z9 ,.!\n|'\"\\é€😀{}"


def escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@pytest.mark.parametrize("seed", range(5))
def test_escaped_text_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        text = "".join(rng.choice(TEXT_POOL) for _ in range(rng.randint(0, 40)))
        template = parse(escape(text))
        assert template.variables == ()
        assert template.render({"a": "x"}) == text


@pytest.mark.parametrize("seed", range(5))
def test_render_matches_a_piece_by_piece_reference(seed: int) -> None:
    rng = random.Random(100 + seed)
    names = ["FirstName", "city", "ZIP", "Customer1", "_x"]
    for _ in range(300):
        values = {
            name.lower(): rng.choice([None, "", " ", "v" + name, 7, dt.date(2020, 1, 2)])
            for name in names
            if rng.random() < 0.8
        }
        body, expected = [], []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.5:
                text = "".join(rng.choice(TEXT_POOL) for _ in range(rng.randint(0, 8)))
                body.append(escape(text))
                expected.append(text)
                continue
            name = rng.choice(names)
            written = rng.choice([name, name.upper(), name.lower()])
            fallback = rng.choice([None, "", "there", " a|b "])
            body.append("{" + written + ("" if fallback is None else "|" + fallback) + "}")
            value = values.get(name.lower())
            if value is None:
                text = ""
            elif isinstance(value, dt.date):
                text = value.isoformat()
            else:
                text = str(value)
            expected.append(text if text.strip() else (fallback or ""))
        template = parse("".join(body))
        assert template.render_lower(values) == "".join(expected)
        mixed = {key.upper(): value for key, value in values.items()}
        assert template.render(mixed) == "".join(expected)
