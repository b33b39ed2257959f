"""The new words of a reply, and whether they plainly ask to stop.

Rules:
- `fresh_text`: the reply without what it quotes and without its signature. It ends at the
  first quoting line: one beginning with ">", an attribution line ("On ... wrote:", "Am ...
  schrieb ...:", "Le ... a écrit :", "El ... escribió:", "Op ... schreef ...:", "Il ...
  ha scritto:"), an Outlook block ("-----Original Message-----", or a "From:" line whose next
  non-blank line is "Sent:"/"Date:"), or a signature mark ("-- "). Blank lines at both ends go.
- `excerpt`: the first EXCERPT_LINES non-empty lines of the fresh text, at most
  EXCERPT_CHARS characters, control characters removed: what the log and console show.
- `asks_to_stop`: True only when the message plainly asks to stop: its subject or the first
  line of its fresh text is short (at most SHORT_LINE words), holds one of the opt-out phrases
  of English or of the business's language, and no negation ("don't stop!"), and the fresh
  text as a whole is short (at most SHORT_REPLY words). A long, warm reply that happens to use
  the word "stop" is a reply. A subject with a reply or forward prefix (Re:, AW:, Fwd:...) is
  the answered note's own, which the owner wrote: only a subject of the sender's own is read
  ("Thanks!" to "Our last stop of the summer" is a reply).
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
    phrases = OPT_OUT_PHRASES["en"] + OPT_OUT_PHRASES.get(language, ())
    first_line = next((line for line in own.splitlines() if line.strip()), "")
    own_subject = "" if _PREFIX.match(subject) else subject
    return any(_plain_request(line, phrases) for line in (own_subject, first_line))


def _plain_request(line: str, phrases: tuple[str, ...]) -> bool:
    words = _words(line)
    if not words or len(words) > SHORT_LINE:
        return False
    if NEGATIONS.intersection(words):
        return False
    joined = " " + " ".join(words) + " "
    return any(f" {' '.join(_words(phrase))} " in joined for phrase in phrases)


def _words(text: str) -> list[str]:
    """Lower-case words; "don't" is "do not"."""
    normal = unicodedata.normalize("NFC", text).lower().replace(_TYPOGRAPHIC_APOSTROPHE, "'")
    words: list[str] = []
    for word in _WORD.findall(normal):
        words.extend((word[:-3], "not") if word.endswith("n't") else (word,))
    return words


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch == "\t" or unicodedata.category(ch)[0] != "C")
