"""The reply classifier: keywords (whole message), probable opt-outs, and what is not one."""

from __future__ import annotations

import pytest

from dnc.keywords import Kind, classify, classify_for_business_unit, edit_distance, normalise
from tests.factories import BusinessUnitFactory

# Opt-out keywords: the whole message, whatever the case, spacing and punctuation.
KEYWORD_OPT_OUTS = [
    "STOP",
    "stop",
    "Stop",
    "Stop.",
    " stop ",
    "STOP!!!",
    "stop 😡",
    "S T O P",
    "STOPALL",
    "Stop all",
    "UNSUBSCRIBE",
    "Unsubscribe.",
    "CANCEL",
    "cancel!",
    "END",
    "End.",
    "QUIT",
    "quit",
    "OPTOUT",
    "opt out",
    "Opt-Out",
    "OPT OUT!",
    "REVOKE",
    "revoke.",
    "«Stop»",
]

# Free text that reads as a request to stop: probable opt-outs.
PROBABLE_OPT_OUTS = [
    "please stop texting me",
    "Please stop",
    "Stop please",
    "STOP SENDING ME MESSAGES",
    "Stop messaging me!",
    "stop txting me",
    "Stop it",
    "stop now",
    "Quit texting me",
    "no more messages",
    "No more texts please!",
    "no more",
    "take me off your list",
    "Take me off this list please",
    "remove me from your list",
    "Please remove my number",
    "Delete my number",
    "lose my number",
    "unsubscribe me",
    "How do I unsubscribe?",
    "unsuscribe",
    "unsubscibe me",
    "stpo",
    "sotp",
    "stopp",
    "STOPPP",
    "sstop",
    "stoooop",
    "st0p",
    "Stop!! who is this",
    "Stop. Who is this and how did you get my number?",
    "Who is this? Stop.",
    "yes stop",
    "do not text me",
    "Don't contact me again",
    "Do not text",
    "never text this number again",
    "I don't want these texts",
    "I do not want any more messages",
    "Leave me alone",
    "wrong number",
    "You have the wrong number",
    "opt me out",
    "opt-out please",
    "I revoke my consent",
    "I already said stop",
    "cease and desist",
    "end these messages",
    "this is spam, stop",
    "Not interested, stop",
    "I want this to stop",
    "make it stop",
    "cancle",
    "no mas",
    "No más",
    "no más mensajes por favor",
    "alto",
    "ALTO!",
    "Alto por favor",
    "basta",
    "ya basta",
    "cancelar",
    "no me envíes más mensajes",
    "No me escriban",
    "dejen de mandarme mensajes",
    "quiero darme de baja",
    "Quítenme de su lista",
    "ya no quiero recibir mensajes",
    "arrête",
]

# Not opt-outs, including the false positives a naive "contains STOP" rule would make.
NOT_OPT_OUTS = [
    "don't stop the good work",
    "Dont stop!",
    "Please don't stop sending reminders",
    "Never stop texting me these deals",
    "I can't stop laughing",
    "stop by tomorrow?",
    "Can you stop by the office at 5?",
    "Please stop by the front desk",
    "I'll stop in at 3pm",
    "The bus stop moved",
    "My stop is the next one",
    "Non-stop fun!",
    "the stop sign is down",
    "stop my order",
    "Can you stop the payment?",
    "What happens if I reply STOP?",
    "I don't want to unsubscribe",
    "top",
    "shop",
    "step",
    "atop",
    "stoop",
    "Thanks!",
    "ok",
    "OK see you then",
    "Who is this?",
    "Can I reschedule?",
    "What time is my appointment?",
    "cancel my appointment",
    "I need to cancel",
    "Cancel it please",
    "I quit smoking last year",
    "The end.",
    "Is this a scam?",
    "I never texted you",
    "I did not send that",
    "No",
    "Nope, wrong day",
    "No more than two a week please",
    "I have no more questions",
    "cancer screening results?",
    "Yes I will be there",
    "Send me the address",
    "Call me at the end of the day",
    "",
    "👍",
]

HELP = [
    "HELP",
    "help",
    "Help",
    "Help.",
    "HELP!",
    "help?",
    " help ",
    "HELP!!!",
    "h e l p",
    "INFO",
    "info",
    "Info.",
    "info?",
    "INFO!",
    "More info",
    "more info please",
    "Help please",
    "help me",
    "Please help",
    "please help me",
    "I need help",
    "need help",
    "help pls",
    "Help plz",
    "can you help",
    "Can you help me?",
    "info pls",
    "Info please",
    "send info",
    "send me info",
    "I want info",
    "some help please",
    "help thanks",
    "Need help!",
    "HELP ME",
    "what is this help",
    "Help, please.",
    "INFO please!",
    "info thanks",
    "get help",
]

OPT_IN = [
    "START",
    "start",
    "Start.",
    "START!",
    " start ",
    "Start!!",
    "s t a r t",
    "UNSTOP",
    "unstop",
    "Unstop.",
    "YES",
    "yes",
    "Yes!",
    "yes.",
    "YES!!!",
    "yes please",
    "Yes, please",
    "YES PLEASE",
    "Start please",
    "please start",
    "start again",
    "Start again please",
    "unstop please",
    "Please unstop",
    "yes yes",
    "ok start",
    "Start now",
    "start me back",
    "Yes sure",
    "yeah yes",
    "START AGAIN",
    "start thanks",
    "Start, thank you",
    "yes thanks",
    "Yes thank you",
    "I want to start",
    "please start again",
    "Yes!!",
    "unstop me",
    "start up",
]


@pytest.mark.parametrize("body", KEYWORD_OPT_OUTS)
def test_opt_out_keywords_match_the_whole_message(body):
    verdict = classify(body)
    assert verdict.kind == Kind.OPT_OUT, verdict


@pytest.mark.parametrize("body", PROBABLE_OPT_OUTS)
def test_free_text_requests_to_stop_are_probable_opt_outs(body):
    verdict = classify(body)
    assert verdict.kind == Kind.PROBABLE_OPT_OUT, verdict
    assert verdict.reasons


@pytest.mark.parametrize("body", NOT_OPT_OUTS)
def test_texts_that_are_not_opt_outs(body):
    verdict = classify(body)
    assert verdict.kind not in (Kind.OPT_OUT, Kind.PROBABLE_OPT_OUT), verdict


@pytest.mark.parametrize("body", HELP)
def test_help(body):
    assert classify(body).kind == Kind.HELP


@pytest.mark.parametrize("body", OPT_IN)
def test_opt_in(body):
    assert classify(body).kind == Kind.OPT_IN


def test_tables_hold_at_least_forty_phrasings_each_way():
    assert len(KEYWORD_OPT_OUTS + PROBABLE_OPT_OUTS) >= 40
    assert len(NOT_OPT_OUTS) >= 40
    assert len(HELP) >= 40
    assert len(OPT_IN) >= 40


def test_probable_opt_out_wins_over_a_lenient_help():
    assert classify("help me stop these texts").kind == Kind.PROBABLE_OPT_OUT


def test_keyword_lists_are_the_business_units(db):
    bu = BusinessUnitFactory(
        opt_out_keywords=["STOP", "BAJA", "REMOVE ME"],
        opt_in_keywords=["ALTA"],
        help_keywords=["AYUDA"],
    )
    assert classify_for_business_unit("Remove me!", bu).kind == Kind.OPT_OUT
    assert classify_for_business_unit("remove-me", bu).keyword == "REMOVE ME"
    assert classify_for_business_unit("alta", bu).kind == Kind.OPT_IN
    assert classify_for_business_unit("Ayuda", bu).kind == Kind.HELP
    # No longer keywords there: START is other, HELP is other, QUIT is only probable at most.
    assert classify_for_business_unit("START", bu).kind == Kind.OTHER
    assert classify_for_business_unit("help", bu).kind == Kind.OTHER
    assert classify_for_business_unit("quit", bu).kind != Kind.OPT_OUT


def test_an_opt_out_keyword_wins_when_a_bu_lists_it_twice():
    verdict = classify("stop", opt_out_keywords=["STOP"], help_keywords=["HELP", "STOP"])
    assert verdict.kind == Kind.OPT_OUT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Don't STOP!!", "dont stop"),
        ("No más", "no mas"),
        ("opt-out", "opt out"),
        ("  Ça  suffit ", "ca suffit"),
        ("it’s", "its"),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("stop", "stop", 0),
        ("stpo", "stop", 1),
        ("sotp", "stop", 1),
        ("stopp", "stop", 1),
        ("sto", "stop", 1),
        ("spot", "stop", 2),
        ("unsuscribe", "unsubscribe", 1),
    ],
)
def test_edit_distance_counts_a_swap_as_one(a, b, distance):
    assert edit_distance(a, b) == distance
