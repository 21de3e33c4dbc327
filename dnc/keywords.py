"""Reading a recipient's reply: opt-out, opt-in, help, probable opt-out, or other.

Keywords are the business unit's editable lists (``BusinessUnit.opt_out_keywords`` and friends)
and match the *whole* message, ignoring case, accents, punctuation and spacing (CTIA practice:
``Stop.``, `` STOP!`` and ``opt-out`` are keywords; ``stop please`` is not).

A message that is not a keyword but reads as a request to stop is a **probable opt-out** (US rules
accept revocation "by any reasonable means": phrases, misspellings, other languages). A small
scoring classifier decides, over the normalised text:

* phrase patterns, each worth a weight (``stop texting me``, ``take me off your list``, ``no more
  messages``, ``unsubscribe``, ``no me envíen más``, ``darme de baja``...);
* in a short message (up to four words), a word within one edit of STOP (``stpo``, ``sotp``,
  ``stopp``, ``sstop``; transpositions count as one edit), and whole-message misspellings of the
  longer keywords (``unsubscibe``, ``cancle``);
* whole messages that say stop in another way (``no mas``, ``alto``, ``basta``, ``cancelar``);
* negative patterns that veto the above: ``don't stop``, ``stop by tomorrow?``, ``bus stop``,
  ``stop the payment``, ``what happens if I reply stop?``.

A message scoring 1 or more is a probable opt-out. The rules are plain data below, so a false
positive or negative found in production becomes one more line and one more row in
``tests/test_keywords.py``.

Precedence: an opt-out keyword, then opt-in, then help keywords (whole message), then the probable
opt-out score, then a lenient opt-in or help match (the keyword plus polite filler: ``yes
please``, ``start again``, ``more info``, ``I need help``). So ``help me stop these texts`` is a
probable opt-out, never a HELP.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pcsms.models import (
    DEFAULT_HELP_KEYWORDS,
    DEFAULT_OPT_IN_KEYWORDS,
    DEFAULT_OPT_OUT_KEYWORDS,
)


class Kind(enum.StrEnum):
    """The classification (values equal ``messaging.models.InboundMessage.Classification``)."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    PROBABLE_OPT_OUT = "probable_opt_out"
    OTHER = "other"


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    keyword: str = ""  # the BU keyword matched, for the keyword kinds
    score: float = 0.0  # the probable opt-out score (any kind)
    reasons: tuple[str, ...] = ()  # the rules that fired, for the admin's "action taken"

    def describe(self) -> str:
        if self.keyword:
            return f"keyword {self.keyword.upper()}"
        if self.reasons:
            return "; ".join(self.reasons)
        return ""


THRESHOLD = 1.0
SHORT_MESSAGE_WORDS = 4

# --- normalising ---------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, accents and apostrophes removed, anything else not a letter or digit a space.

    ``"Don't STOP!!"`` -> ``"dont stop"``; ``"No más"`` -> ``"no mas"``; ``"opt-out"`` ->
    ``"opt out"``.
    """
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = _APOSTROPHES.sub("", plain)
    return _NOT_WORD.sub(" ", plain).strip()


def _squeeze(word: str) -> str:
    """Runs of one letter as one letter: ``stooop`` -> ``stop``."""
    return re.sub(r"(.)\1+", r"\1", word)


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), capped at ``limit``.

    A swap of two neighbouring letters (``stpo``) counts as one edit, as people type them.
    """
    if abs(len(a) - len(b)) >= limit:
        return limit
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return min(previous[-1], limit)


# --- the rules -----------------------------------------------------------------------------

# Words for "texts" (English and Spanish), used inside patterns.
_MSG = (
    r"(?:text(?:s|ing|ed)?|txt(?:s|ing)?|txting|texting|message(?:s)?|messaging|msg(?:s)?"
    r"|sms|sending|contact(?:ing)?|calling|call(?:s)?|spam(?:ming)?|bother(?:ing)?"
    r"|harass(?:ing)?|email(?:s|ing)?|writing|notification(?:s)?|alert(?:s)?|reminder(?:s)?"
    r"|promo(?:s|tions)?|ads|marketing|offers)"
)
_MSG_NOUN = (
    r"(?:texts|text messages|messages|msgs|txts|sms|alerts|notifications|reminders|promos"
    r"|promotions|marketing)"
)
_MSG_ES = r"(?:mensajes?|textos?|msjs?|sms|notificaciones|correos|llamadas)"

# (pattern, weight, reason). Weights of 1 decide alone; smaller ones only together.
POSITIVE_RULES: Sequence[tuple[str, float, str]] = [
    (
        r"\b(?:stop|quit)\s+(?:(?:all|the|these|those|your|this|ur|sending|with|me)\s+){0,3}"
        + _MSG
        + r"\b",
        1.0,
        "asks to stop the texts",
    ),
    (
        r"\b(?:end|cease|halt|discontinue)\s+(?:(?:all|the|these|those|your|this|ur)\s+){0,2}"
        + _MSG_NOUN
        + r"\b",
        1.0,
        "asks to end the texts",
    ),
    (
        r"^(?:please\s+)?(?:dont|do not|donot|never)\s+(?:text|txt|message|msg|contact|sms|email"
        r"|call)\w*(?:\s+(?:please|pls|again|anymore|thanks))?$",
        1.0,
        "do not text",
    ),
    (
        r"^(?:ya\s+)?(?:alto|basta|cancelar|parar|pare|paren|detener)"
        r"(?:\s+(?:por favor|porfavor|porfa|ya|gracias|ahora))*$",
        1.0,
        "alto / basta",
    ),
    (
        r"\b(?:please|pls|plz|plez|plse|kindly|just)\s+(?:just\s+)?(?:stop|quit)\b",
        1.0,
        "please stop",
    ),
    (
        r"\b(?:stop|unsubscribe|unsub)\s+(?:it|now|please|pls|plz|immediately|already|asap"
        r"|right now|this|thanks|thank you|them)\b",
        1.0,
        "stop now / stop it",
    ),
    (r"\bunsub(?:scribe|scribed|scribing)?\b", 1.0, "unsubscribe"),
    (
        r"\b(?:remove|delete|erase|drop)\s+(?:me|my\s+(?:phone\s+|cell\s+|mobile\s+)?"
        r"(?:number|num|info|information|contact|cell|phone|name))\b",
        1.0,
        "remove me",
    ),
    (
        r"\b(?:take|get|cross|scratch|put)\s+(?:me|my\s+(?:phone\s+|cell\s+)?(?:number|name|info))"
        r"\s+(?:off|out)\b",
        1.0,
        "take me off the list",
    ),
    (r"\b(?:do not|dont|no) (?:contact|call|text|disturb) list\b", 1.0, "do-not-contact list"),
    (r"\bopt(?:ing|ed)?\s*(?:me\s+)?out\b", 1.0, "opt out"),
    (
        r"\b(?:dont|do not|donot|never|no longer)\s+(?:ever\s+)?(?:again\s+)?"
        r"(?:text|txt|message|msg|contact|sms|send|email|write|bother|call)\w*\s+"
        r"(?:me|us|this number|my number|my phone|again|anymore|any more|here)\b",
        1.0,
        "do not text me",
    ),
    (
        r"\b(?:dont|do not|no longer|never)\s+(?:want|wish|need|like)\b(?:\s+\w+){0,5}?\s+"
        r"(?:texts|messages|msgs|txts|sms|these|them|texted|contacted|messaged|reminders|alerts)\b",
        1.0,
        "does not want the texts",
    ),
    (r"\bno\s+more\s+(?:of\s+(?:these|this|your)\s+)?" + _MSG + r"\b", 1.0, "no more texts"),
    (r"\b(?:no more|no mas)\s+(?:please|pls|plz|thanks|gracias|por favor)\b", 1.0, "no more"),
    (
        r"\b(?:leave me alone|go away|fuck off|f off|piss off|get lost|buzz off|back off"
        r"|sod off|bugger off|screw off)\b",
        1.0,
        "leave me alone",
    ),
    (r"\bwrong (?:number|person|num|phone)\b", 1.0, "wrong number"),
    (r"\bcease and desist\b", 1.0, "cease and desist"),
    (r"\brevok\w*\b", 1.0, "revoke"),
    (
        r"\b(?:withdraw|withdrawing|retract|revoking)\s+(?:my\s+)?consent\b",
        1.0,
        "withdraws consent",
    ),
    (
        r"\b(?:lose|delete|forget)\s+(?:my|this)\s+(?:number|num|phone number)\b",
        1.0,
        "lose my number",
    ),
    (
        r"\bi\s+(?:already\s+)?(?:said|replied|texted|sent|wrote|typed|told you)\s+stop\b",
        1.0,
        "already said stop",
    ),
    (
        r"\b(?:stop|quit|end|cancel|cancelar)\s+(?:my\s+|the\s+|these\s+|all\s+)?"
        r"(?:alerts|notifications|reminders|text alerts|sms alerts"
        r"|subscription to (?:texts|sms))\b",
        1.0,
        "cancel the alerts",
    ),
    (
        r"\b(?:want|need)\s+(?:this|it|these|them|you|the texts|the messages)\s+to\s+stop\b",
        1.0,
        "wants it to stop",
    ),
    (r"\bmake\s+(?:it|this|them)\s+stop\b", 1.0, "make it stop"),
    (r"\bnot interested\b", 0.6, "not interested"),
    (r"\b(?:annoying|harassment|harassing|spam|spamming|scam)\b", 0.4, "complains of spam"),
    (r"\bstop\b", 0.4, "says stop"),
    # Spanish
    (
        r"\b(?:no|ya no)\s+me\s+(?:(?:vuelvan?|vuelva|vuelvas)\s+a\s+)?"
        r"(?:escrib|envi|mand|contact|llam|text|molest)\w*",
        1.0,
        "no me escriban",
    ),
    (
        r"\bdej(?:a|e|en|ar|ad|es)\s+de\s+(?:escrib|envi|mand|contact|llam|molest|text)\w*",
        1.0,
        "dejen de escribir",
    ),
    (r"\b(?:dar(?:me|se)?|doy|den(?:me)?|quiero darme)\s+de\s+baja\b", 1.0, "darme de baja"),
    (
        r"\bno\s+(?:quiero|deseo|necesito)\s+(?:recibir\s+)?(?:mas\s+)?(?:sus\s+|estos\s+)?"
        + _MSG_ES,
        1.0,
        "no quiero mensajes",
    ),
    (r"\bno\s+mas\s+" + _MSG_ES, 1.0, "no mas mensajes"),
    (r"\b(?:ya basta|basta ya)\b", 1.0, "ya basta"),
    (
        r"\b(?:eliminar|eliminen|elimine|borrar|borren|borre|quitar|quiten|quite|saquen|sacar)"
        r"(?:me)?\s+(?:mi\s+(?:numero|telefono|celular)|de\s+(?:la|su|tu|sus)\s+listas?)\b",
        1.0,
        "quitenme de la lista",
    ),
]

# The free-text rules above that read Spanish: a probable opt-out they decide is answered by the
# BU's Spanish keyword set.
SPANISH_REASONS = frozenset(
    {
        "no me escriban",
        "dejen de escribir",
        "darme de baja",
        "no quiero mensajes",
        "no mas mensajes",
        "ya basta",
        "quitenme de la lista",
    }
)

NEGATIVE_RULES: Sequence[tuple[str, float, str]] = [
    (
        r"\b(?:dont|do not|never|cant|cannot|can not|wont|will not|didnt|shouldnt|wouldnt|not)"
        r"\s+(?:ever\s+|you\s+)?(?:stop|unsubscribe|opt\s*out|cancel|quit)\b",
        2.0,
        "negated (don't stop)",
    ),
    (
        r"\b(?:dont|do not|not|never)\s+(?:want|wish|mean|need|meant)\s+to\s+"
        r"(?:stop|unsubscribe|opt\s*out|cancel|quit)\b",
        2.0,
        "negated (don't want to stop)",
    ),
    (r"\bstop\s+(?:by|in|at|over|off|to|for|on by|down|past|around)\b", 2.0, "stop by / stop in"),
    (
        r"\b(?:bus|train|pit|last|next|first|one|truck|rest|my|your|full|non|shop|subway|metro)"
        r"\s+stop\b|\bnonstop\b|\bstop\s*(?:sign|signs|light|lights|watch|loss|gap|motion)\b",
        2.0,
        "stop as a noun",
    ),
    (
        r"\bstop\s+(?:(?:the|my|that|this|a|your|our)\s+)?(?:payment|payments|check|cheque|order"
        r"|delivery|shipment|service|autopay|transfer|car|bleeding|clock|timer|alarm|water|leak"
        r"|process|withdrawal|debit|charge|charges)\b",
        2.0,
        "stop something else",
    ),
    (
        r"\b(?:if|when|should|can|do)\s+i\s+(?:reply|text|send|say|type|respond)\w*\s+"
        r"(?:with\s+)?stop\b",
        1.5,
        "asks about STOP",
    ),
]

# Whole messages (normalised) that say stop without a keyword.
WHOLE_MESSAGES = frozenset(
    {
        "no more",
        "no mas",
        "nomas",
        "alto",
        "basta",
        "cancelar",
        "parar",
        "para",
        "pare",
        "paren",
        "detener",
        "baja",
        "darme de baja",
        "stop it",
        "enough",
        "halt",
        "cease",
        "remove",
        "unsub",
        "arret",
        "arrete",
        "arreter",
        "desabonner",
        "desinscrire",
        "sair",
        "stop stop",
        "stop all",
        "end all",
        "stop now",
    }
)

# Real words within one edit of STOP: never read as a misspelling.
NOT_STOP = frozenset(
    {"top", "sop", "shop", "slop", "step", "stow", "swop", "atop", "stoop", "stomp", "strop"}
)
# Misspellings of the longer keywords (edit distance allowed): any word of a short message...
MISSPELT_IN_SHORT = {"unsubscribe": 2, "stopall": 1}
# ...or the whole message, for keywords close to real words; and those real words.
MISSPELT_WHOLE = {"cancel": 1, "optout": 1, "revoke": 1}
NOT_MISSPELT = frozenset({"cancer", "canceled", "cancels", "revoked", "revokes", "stopa"})

_POSITIVE = [(re.compile(p), w, r) for p, w, r in POSITIVE_RULES]
_NEGATIVE = [(re.compile(p), w, r) for p, w, r in NEGATIVE_RULES]
_FIRST_WORD_THEN_PUNCT = re.compile(r"^\W*([^\W\d_]+)\s*[.!,;:?]")
_LAST_WORD_AFTER_PUNCT = re.compile(r"[.!?,;:]\s*([^\W\d_]+)\W*$")

# Polite words allowed around an opt-in or help keyword in the lenient match.
OPT_IN_FILLER = frozenset(
    {
        "please",
        "pls",
        "plz",
        "again",
        "me",
        "back",
        "now",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "i",
        "want",
        "to",
        "in",
        "up",
        "yes",
        "yeah",
        "sure",
        "si",
    }
)
HELP_FILLER = frozenset(
    {
        "please",
        "pls",
        "plz",
        "i",
        "need",
        "more",
        "some",
        "me",
        "send",
        "get",
        "can",
        "you",
        "what",
        "is",
        "this",
        "thanks",
        "a",
        "for",
        "want",
        "with",
    }
)
LENIENT_MAX_WORDS = 5


# --- classifying ---------------------------------------------------------------------------


def _keys(keywords: Iterable[str]) -> list[tuple[str, str, str]]:
    """(keyword, normalised, normalised without spaces) for each non-empty keyword."""
    out = []
    for keyword in keywords:
        key = normalise(keyword)
        if key:
            out.append((keyword, key, key.replace(" ", "")))
    return out


def _whole_match(text: str, keywords: list[tuple[str, str, str]]) -> str:
    compact = text.replace(" ", "")
    for keyword, key, key_compact in keywords:
        if text == key or compact == key_compact:
            return keyword
    return ""


def _lenient_match(words: list[str], keywords: list[tuple[str, str, str]], filler) -> str:
    if not words or len(words) > LENIENT_MAX_WORDS:
        return ""
    for keyword, key, _ in keywords:
        key_words = key.split()
        rest = list(words)
        for i in range(len(rest) - len(key_words) + 1):
            if rest[i : i + len(key_words)] == key_words:
                others = rest[:i] + rest[i + len(key_words) :]
                if all(word in filler for word in others):
                    return keyword
    return ""


def _stop_like(word: str) -> bool:
    if word in NOT_STOP:
        return False
    squeezed = _squeeze(word)
    return squeezed == "stop" or (3 <= len(squeezed) <= 5 and edit_distance(squeezed, "stop") <= 1)


def _misspelt(words: list[str], keywords: dict[str, int]) -> str:
    for word in words:
        if word in NOT_MISSPELT or len(word) < 4:
            continue
        for keyword, distance in keywords.items():
            if word != keyword and edit_distance(word, keyword) <= distance:
                return f"'{word}' reads as {keyword.upper()}"
    return ""


def opt_out_score(body: str) -> tuple[float, tuple[str, ...]]:
    """The probable opt-out score of a message and the rules that made it."""
    text = normalise(body)
    words = text.split()
    score = 0.0
    reasons: list[str] = []
    if text in WHOLE_MESSAGES:
        score += 1.0
        reasons.append(f"'{text}' means stop")
    for pattern, weight, reason in _POSITIVE:
        if pattern.search(text):
            score += weight
            reasons.append(reason)
    short = bool(words) and len(words) <= SHORT_MESSAGE_WORDS
    if short:
        stoplike = [w for w in words if w != "stop" and _stop_like(w)]
        if "stop" in words:
            score += 0.6  # with "says stop" (0.4): STOP in a short message decides
            reasons.append("STOP in a short message")
        elif stoplike:
            score += 1.0
            reasons.append(f"'{stoplike[0]}' reads as STOP")
        misspelt = _misspelt(words, MISSPELT_IN_SHORT)
        if misspelt:
            score += 1.0
            reasons.append(misspelt)
    if len(words) == 1:
        misspelt = _misspelt(words, MISSPELT_WHOLE)
        if misspelt:
            score += 1.0
            reasons.append(misspelt)
    if not short:
        raw = unicodedata.normalize("NFKD", body or "")
        for pattern in (_FIRST_WORD_THEN_PUNCT, _LAST_WORD_AFTER_PUNCT):
            match = pattern.search(raw)
            word = match.group(1).lower() if match else ""
            if word and _stop_like(word):
                # Exactly STOP already scored 0.4 above.
                score += 0.6 if word == "stop" else 1.0
                reasons.append("STOP set apart as a sentence")
                break
    for pattern, weight, reason in _NEGATIVE:
        if pattern.search(text):
            score -= weight
            reasons.append(f"but {reason}")
    return score, tuple(reasons)


def classify(
    body: str,
    *,
    opt_out_keywords: Iterable[str] = DEFAULT_OPT_OUT_KEYWORDS,
    opt_in_keywords: Iterable[str] = DEFAULT_OPT_IN_KEYWORDS,
    help_keywords: Iterable[str] = DEFAULT_HELP_KEYWORDS,
) -> Verdict:
    """Classify one inbound text against keyword lists (see the module docstring)."""
    text = normalise(body)
    if not text:
        return Verdict(Kind.OTHER)
    opt_out, opt_in, help_ = _keys(opt_out_keywords), _keys(opt_in_keywords), _keys(help_keywords)
    for kind, keywords in ((Kind.OPT_OUT, opt_out), (Kind.OPT_IN, opt_in), (Kind.HELP, help_)):
        keyword = _whole_match(text, keywords)
        if keyword:
            return Verdict(kind, keyword=keyword)
    score, reasons = opt_out_score(body)
    if score >= THRESHOLD:
        return Verdict(Kind.PROBABLE_OPT_OUT, score=score, reasons=reasons)
    words = text.split()
    keyword = _lenient_match(words, opt_in, OPT_IN_FILLER)
    if keyword:
        return Verdict(Kind.OPT_IN, keyword=keyword, score=score)
    keyword = _lenient_match(words, help_, HELP_FILLER)
    if keyword:
        return Verdict(Kind.HELP, keyword=keyword, score=score)
    return Verdict(Kind.OTHER, score=score, reasons=reasons)


def classify_for_business_unit(body: str, business_unit) -> Verdict:
    """``classify`` with the keyword lists of a business unit: its own (its first language)
    and those of each of its other languages (``KeywordSet``)."""
    sets = list(business_unit.keyword_sets.all())
    return classify(
        body,
        opt_out_keywords=[
            *(business_unit.opt_out_keywords or DEFAULT_OPT_OUT_KEYWORDS),
            *(w for k in sets for w in k.opt_out_keywords or []),
        ],
        opt_in_keywords=[
            *(business_unit.opt_in_keywords or DEFAULT_OPT_IN_KEYWORDS),
            *(w for k in sets for w in k.opt_in_keywords or []),
        ],
        help_keywords=[
            *(business_unit.help_keywords or DEFAULT_HELP_KEYWORDS),
            *(w for k in sets for w in k.help_keywords or []),
        ],
    )


def keyword_set_of(verdict: Verdict, business_unit):
    """The other-language keyword set whose keyword the verdict matched (its replies answer),
    or None for the BU's own keywords. A free-text opt-out in Spanish is answered by the BU's
    Spanish set; any other free text in the BU's first language."""
    if not verdict.keyword:
        if SPANISH_REASONS & set(verdict.reasons):
            spanish = (
                k for k in business_unit.keyword_sets.all() if k.language.lower() == "spanish"
            )
            return next(spanish, None)
        return None
    own = {
        Kind.OPT_OUT: business_unit.opt_out_keywords or DEFAULT_OPT_OUT_KEYWORDS,
        Kind.OPT_IN: business_unit.opt_in_keywords or DEFAULT_OPT_IN_KEYWORDS,
        Kind.HELP: business_unit.help_keywords or DEFAULT_HELP_KEYWORDS,
    }.get(verdict.kind, [])
    if verdict.keyword.strip().upper() in {w.strip().upper() for w in own}:
        return None
    kind = {Kind.OPT_OUT: "opt_out", Kind.OPT_IN: "opt_in", Kind.HELP: "help"}.get(verdict.kind)
    return next(
        (k for k in business_unit.keyword_sets.all() if kind and k.has(verdict.keyword, kind)), None
    )
