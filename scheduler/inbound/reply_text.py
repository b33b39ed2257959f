"""The new words of a reply, and whether they plainly ask to stop.

Rules:
- `fresh_text`: the reply without what it quotes and without its signature. It ends at the
  first quoting line: one beginning with ">", an attribution line ("On ... wrote:", "Am ...
  schrieb ...:", "Le ... a écrit :", "El ... escribió:", "Op ... schreef ...:", "Il ...
  ha scritto:"), an Outlook block ("-----Original Message-----", or a "From:" line whose next
  non-blank line is "Sent:"/"Date:"), or a signature mark ("-- "). Blank lines at both ends go.
- `excerpt`: the first EXCERPT_LINES non-empty lines of the fresh text, at most
  EXCERPT_CHARS characters, control characters removed: what the log and console show.
- `asks_to_stop`: True only when the message plainly asks to stop, and the fresh text as a
  whole is short (at most SHORT_REPLY words): a long, warm reply that happens to use the word
  "stop" is a reply. The lines read are the first of the fresh text (and the one after it when
  the first is a greeting: "Hi Ada,") and the subject; a line asks to stop when it is short
  (at most SHORT_LINE words) and one of its sentences holds an opt-out phrase of English or of
  the business's language with no negation before it in that sentence ("Please stop, I'm not
  interested" asks; "don't stop!" and "I do not want these to stop" do not). A subject with a
  reply or forward prefix (Re:, AW:, Fwd:...) is the answered note's own, which the owner
  wrote: it asks only when what follows the prefix is an opt-out phrase alone, perhaps with a
  "please" ("Re: Unsubscribe"), so "Thanks!" to "Our last stop of the summer" is a reply.
"""

from __future__ import annotations

import re
import unicodedata

EXCERPT_LINES = 5
EXCERPT_CHARS = 500
SHORT_LINE = 10
SHORT_REPLY = 60

OPT_OUT_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        "unsubscribe",
        "stop",
        "remove me",
        "opt out",
        "optout",
        "take me off",
        "no more emails",
        "no more email",
        "stop emailing",
        "stop sending",
    ),
    "de": ("abmelden", "abbestellen", "austragen", "keine emails mehr", "keine e mails mehr"),
    "fr": ("désabonner", "désinscrire", "désabonnement", "stop", "ne plus recevoir"),
    "es": ("darme de baja", "dar de baja", "baja", "no más correos", "cancelar suscripción"),
    "nl": ("afmelden", "uitschrijven", "geen mails meer"),
    "it": ("disiscrivi", "cancellami", "annulla iscrizione", "non inviare più"),
}
"""Phrases that ask to stop, by language (matched as whole words, case and accents kept)."""
NEGATIONS = frozenset({"not", "dont", "never", "nicht", "nie", "ne", "pas", "niet"})
"""Words that turn a phrase around ("don't stop" reads as "do not stop")."""
_QUOTE_START = re.compile(
    r"^\s*(>|-{2,}\s*original message\s*-{2,}|-{2,}\s*ursprüngliche nachricht\s*-{2,}|"
    r"on\b.{0,200}\bwrote:\s*$|am\b.{0,200}\bschrieb\b.{0,200}:\s*$|"
    r"le\b.{0,200}\ba écrit\s*:\s*$|el\b.{0,200}\bescribió:\s*$|"
    r"op\b.{0,200}\bschreef\b.{0,200}:\s*$|il\b.{0,200}\bha scritto:\s*$)",
    re.IGNORECASE,
)
_HEADER_BLOCK = re.compile(r"^\s*(from|von|de|van|da):\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*(sent|date|gesendet|datum|envoyé|enviado|verzonden|inviato):\s", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"[.!?;]+")
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening)|hallo|liebe[rs]?|"
    r"sehr geehrte[rs]?|guten (morgen|tag|abend)|bonjour|salut|ch[eè]re?s?|hola|buen[oa]s|"
    r"estimad[oa]s?|querid[oa]s?|beste|hoi|ciao|gentile|buongiorno|salve)\b",
    re.IGNORECASE,
)
GREETING_WORDS = 5
"""A first line of at most this many words that opens like a greeting, or ends with a comma,
is one ("Hi Ada,", "Dear Dr Lee,"): the request is read on the line after it too."""
POLITE_WORDS = frozenset({"please", "pls", "plz", "bitte", "svp", "alstublieft", "graag"})
_PREFIX = re.compile(r"^\s*((re|aw|sv|wg|fw|fwd|tr|rv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_TYPOGRAPHIC_APOSTROPHE = "\u2019"


def fresh_text(text: str) -> str:
    """The reply's own words (see the module's rules)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.rstrip() == "--" or line == "-- ":
            break
        if _QUOTE_START.match(line):
            break
        if _HEADER_BLOCK.match(line) and _HEADER_NEXT.match(_next_words(lines, index)):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _next_words(lines: list[str], index: int) -> str:
    """The first line after `lines[index]` that is not blank, or empty. Looked for only after a
    "From:" line, and no further than that: time stays linear in the lines."""
    return next((lines[at] for at in range(index + 1, len(lines)) if lines[at].strip()), "")


def excerpt(text: str) -> str:
    """The first lines of the reply's own words, for the log (see the module's rules)."""
    lines = [_printable(line).strip() for line in fresh_text(text).splitlines()]
    shown = "\n".join(line for line in lines if line)
    shown = "\n".join(shown.splitlines()[:EXCERPT_LINES])
    return shown if len(shown) <= EXCERPT_CHARS else shown[: EXCERPT_CHARS - 1] + "…"


def asks_to_stop(subject: str, text: str, language: str) -> bool:
    """Whether the message plainly asks for no more notes (see the module's rules)."""
    own = fresh_text(text)
    if len(_words(own)) > SHORT_REPLY:
        return False
    phrases = [
        _words(phrase) for phrase in OPT_OUT_PHRASES["en"] + OPT_OUT_PHRASES.get(language, ())
    ]
    lines = [line for line in own.splitlines() if line.strip()]
    read = lines[:2] if lines and _is_greeting(lines[0]) else lines[:1]
    prefix = _PREFIX.match(subject)
    if prefix:
        subject_asks = _phrase_alone(subject[prefix.end() :], phrases)
    else:
        subject_asks = _plain_request(subject, phrases)
    return subject_asks or any(_plain_request(line, phrases) for line in read)


def _is_greeting(line: str) -> bool:
    words = _words(line)
    return len(words) <= GREETING_WORDS and (
        bool(_GREETING.match(line)) or line.rstrip().endswith(",")
    )


def _plain_request(line: str, phrases: list[list[str]]) -> bool:
    """A short line with a sentence that asks to stop (see the module's rules)."""
    if not 0 < len(_words(line)) <= SHORT_LINE:
        return False
    return any(_asks_in(_words(sentence), phrases) for sentence in _SENTENCE_END.split(line))


def _asks_in(words: list[str], phrases: list[list[str]]) -> bool:
    """Whether `words` hold a phrase with no negation before it."""
    for at in range(len(words)):
        if NEGATIONS.intersection(words[:at]):
            return False
        if any(words[at : at + len(phrase)] == phrase for phrase in phrases):
            return True
    return False


def _phrase_alone(text: str, phrases: list[list[str]]) -> bool:
    """`text` is an opt-out phrase and nothing else, but polite words ("please unsubscribe")."""
    words = [word for word in _words(text) if word not in POLITE_WORDS]
    return words in phrases


def _words(text: str) -> list[str]:
    """Lower-case words; "don't" is "do not"."""
    normal = unicodedata.normalize("NFC", text).lower().replace(_TYPOGRAPHIC_APOSTROPHE, "'")
    words: list[str] = []
    for word in _WORD.findall(normal):
        words.extend((word[:-3], "not") if word.endswith("n't") else (word,))
    return words


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch == "\t" or unicodedata.category(ch)[0] != "C")
