"""What an inbound message is, from its facts alone (matching it to a note is `record`'s job).

Rules, first match wins:
1. A message that could not be read at all: `unreadable`, with the reason.
2. A feedback report (RFC 5965 ARF): `complaint` (the customer marked a note as spam).
3. A bounce whose failure is for good (a 5.x.x status, a failed action, or a permanent
   failure flufl.bounce recognises): `bounce`; a temporary one (4.x.x, "delayed"):
   `soft_bounce`. The detail is the status and the server's words.
4. A message to the business's unsubscribe address (the List-Unsubscribe mailto): `opt_out`.
5. A message a machine wrote (RFC 3834 Auto-Submitted, X-Autoreply and kin, a delivery status
   report that reports no failure, e.g. "delivered" or garbage, an out-of-office subject):
   `auto_reply`.
6. A reply that plainly asks to stop (`reply_text.asks_to_stop`): `opt_out`.
7. Anything else: `reply`, a person's answer, with the first lines of its new text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scheduler.inbound.reading import MessageFacts
from scheduler.inbound.reply_text import asks_to_stop, excerpt

Kind = Literal["bounce", "soft_bounce", "complaint", "opt_out", "auto_reply", "reply", "unreadable"]
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|"
    r"abwesenheit|automatische antwort|r[ée]ponse automatique|absence|"
    r"respuesta autom[áa]tica|fuera de la oficina|afwezig|risposta automatica|"
    r"fuori ufficio|auto:)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    detail: str
    """The status and the server's words (a bounce), the feedback type (a complaint), the
    first lines of the new text (a reply or an opt-out), or the reason (unreadable)."""


def classify(  # noqa: PLR0911 - one return per rule, in the docstring's order
    facts: MessageFacts, *, unsubscribe_address: str, language: str
) -> Verdict:
    """What the message is (see the module's rules). `unsubscribe_address`: the business's
    List-Unsubscribe mailto address, or empty; `language`: the business's, e.g. "de"."""
    if facts.unreadable is not None:
        return Verdict("unreadable", facts.unreadable)
    if facts.report == "feedback-report":
        return Verdict("complaint", f"feedback type: {facts.feedback_type or 'not given'}")
    if facts.bounce == "permanent":
        return Verdict("bounce", facts.diagnostic or "a permanent failure, no reason given")
    if facts.bounce == "temporary":
        return Verdict("soft_bounce", facts.diagnostic or "delayed, no reason given")
    if unsubscribe_address and unsubscribe_address.lower() in facts.recipients:
        return Verdict("opt_out", f"an email to {unsubscribe_address.lower()}")
    if (
        facts.auto_submitted
        or facts.report == "delivery-status"
        or _AUTO_SUBJECT.match(facts.subject)
    ):
        return Verdict("auto_reply", facts.subject[:200])
    if asks_to_stop(facts.subject, facts.text, language):
        return Verdict("opt_out", excerpt(facts.text) or facts.subject[:200])
    return Verdict("reply", excerpt(facts.text))
