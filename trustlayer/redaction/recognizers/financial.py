"""Payment cards (Luhn, any grouping), CVVs named or next to a card, IBANs (mod-97)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from trustlayer.redaction import checksums
from trustlayer.redaction.recognizers.base import Rule, Span

__all__ = ["RULES", "cvv_near_cards"]

# ISO/IEC 7812 issuer prefixes of the schemes in circulation, and their lengths.
_IIN = re.compile(r"^(?:2131|1800|4|5[1-5]|2[2-7]|3[47]|3(?:0[0-59]|[689])|6(?:011|5|4[4-9]|2)|35|50|5[6-8]|6[37])")
_CARD_LENGTHS = (16, 15, 14, 13, 19, 18, 17, 12)


def _card_prefix(value: str) -> int | None:
    """Length of the longest-plausible prefix of ``value`` that is a valid card number."""
    digit_ends: list[int] = []
    for i, ch in enumerate(value):
        if ch.isdigit():
            digit_ends.append(i + 1)
    for n in _CARD_LENGTHS:
        if n <= len(digit_ends):
            cut = digit_ends[n - 1]
            # Only cut at a group boundary (end of text or a separator follows).
            if cut < len(value) and value[cut].isdigit():
                continue
            candidate = value[:cut]
            digits = "".join(c for c in candidate if c.isdigit())
            if _IIN.match(digits) and checksums.luhn(digits):
                return cut
    return None


def _iban_prefix(value: str) -> int | None:
    """Length of ``value`` up to the registry length of its country, if that prefix validates."""
    country = value[:2].upper()
    want = checksums.IBAN_LENGTHS.get(country)
    if want is None:
        return None
    count = 0
    for i, ch in enumerate(value):
        if ch.isalnum():
            count += 1
            if count == want:
                end = i + 1
                return end if checksums.iban(value[:end]) else None
    return None


_CVV_WORDS = (r"cvv2?|cvc2?|csc|cvn|cid|security code|card code|card verification(?: value| code)?|"
              r"pr[üu]fnummer|kartenpr[üu]fnummer|cryptogramme|codice di sicurezza|c[óo]digo de seguridad")

RULES: tuple[Rule, ...] = (
    Rule("CREDIT_CARD", re.compile(r"(?<![\d.,-])\d(?:[ -]{0,2}\d){11,22}(?![\d.,]\d)"), score=0.95,
         refine=_card_prefix, checksum=True, validate=checksums.luhn, min_digits=12, name="trustlayer:card_luhn"),
    Rule("CVV", re.compile(r"\b(?:" + _CVV_WORDS + r")\b\W{0,3}(?:is|ist|est|es|:|=|#|no\.?)?\s*(?P<v>\d{3,4})\b",
                           re.IGNORECASE),
         group="v", score=0.95, hint=("cv", "csc", "cid", "code", "prüf", "pruf", "crypto", "codice", "digo"),
         min_digits=3, name="trustlayer:cvv_named"),
    Rule("IBAN_CODE", re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}", re.IGNORECASE), score=1.0,
         refine=_iban_prefix, checksum=True, validate=checksums.iban, min_digits=8, name="trustlayer:iban"),
)

_AFTER_CARD = re.compile(
    r"[\s,;|/]*(?:\(?(?:exp(?:iry|ires|\.)?|valid(?: thru)?|gültig bis)?\s*[:\-]?\s*(?:0[1-9]|1[0-2])\s*/\s*"
    r"(?:\d{2}|\d{4})\)?[\s,;|/]*)?(?:cvv2?|cvc2?|code)?\s*[:=]?\s*(?P<v>\d{3,4})\b", re.IGNORECASE)


def cvv_near_cards(text: str, cards: Iterable[Span]) -> Iterator[Span]:
    """CVVs written right after a card number (``4111 ... 1111 12/27 123``)."""
    for card in cards:
        match = _AFTER_CARD.match(text, card.end)
        if match and match.end() - card.end <= 40:
            yield Span("CVV", match.start("v"), match.end("v"), 0.85, "trustlayer:cvv_next_to_card")
