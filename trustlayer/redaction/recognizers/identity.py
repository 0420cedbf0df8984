"""National and health identifiers, dates of birth, medical record numbers.

Checksummed identifiers are validated (NHS mod-11, NIR mod-97, codice fiscale,
DNI/NIE mod-23, BSN eleven-test, Steuer-IdNr MOD 11,10, DEA); formats without a
checksum and with common look-alikes (a 9-digit BSN, a German ID card number)
need a context word nearby.
"""

from __future__ import annotations

import re

from trustlayer.redaction import checksums
from trustlayer.redaction.recognizers.base import Rule
from trustlayer.redaction.recognizers.contact import valid_phone

__all__ = ["DATE", "RULES"]

_I = re.IGNORECASE

_MONTHS = (
    r"jan(?:uary|uar|vier|\.)?|feb(?:ruary|ruar|\.)?|f[ée]vrier|mar(?:ch|s|\.)?|m[äa]rz|apr(?:il|\.)?|avril|"
    r"may|mai|june?|juin|juni|july?|juillet|juli|aug(?:ust|\.)?|ao[uû]t|sep(?:t(?:ember)?|\.)?|septembre|"
    r"oct(?:ober|\.)?|okt(?:ober)?|octobre|nov(?:ember|embre|\.)?|dec(?:ember|\.)?|dez(?:ember)?|d[ée]cembre|"
    r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre|"
    r"gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    r"januari|februari|maart|mei|augustus|oktober"
)
DATE = (
    r"(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})"
    r"|(?:\d{1,2}(?:st|nd|rd|th|er|\.)?\s+(?:de\s+)?)?(?:" + _MONTHS + r")\.?\s+(?:de\s+)?"
    r"(?:\d{1,2}(?:st|nd|rd|th)?,?\s+)?\d{4})"
)
"""A calendar date in the numeric and month-name forms of the supported locales."""

_BIRTH = (r"born|birth|d\.?o\.?b\.?|b-?day|geboren|geburts|geb\.|n[ée]e?\b|naissance|nacimiento|nacid[oa]|"
          r"nat[oa]\b|nascita|geboorte")

# Not the tail of an international phone number ("+39 092216146").
_NOT_AFTER_CC = r"\b(?=\d)" + "".join(
    rf"(?<!\+{d}{sep})" for d in (r"\d", r"\d\d", r"\d\d\d") for sep in ("", " ", "-"))

_NHS_CONTEXT = ("nhs", "health service", "patient")


def _nhs_not_phone(value: str) -> bool:
    return checksums.nhs(value) and not valid_phone(value)


RULES: tuple[Rule, ...] = (
    Rule("DATE_OF_BIRTH", re.compile(
        r"(?:" + _BIRTH + r")[^\n\d]{0,30}?(?P<v>" + DATE + r")\b", _I),
        group="v", score=0.95, hint=("born", "birth", "dob", "d.o.b", "geb", "né", "ne", "nac", "nat", "day"),
        min_digits=2, name="trustlayer:date_of_birth"),
    Rule("US_SSN", re.compile(_NOT_AFTER_CC + r"\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b"),
         score=0.85,
         context=("ssn", "social security", "social sec"), min_digits=9, name="trustlayer:us_ssn"),
    Rule("US_SSN", re.compile(r"\b(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}\b"), score=0.3,
         context=("ssn", "social security"), context_required=True, min_digits=9, name="trustlayer:us_ssn_context"),
    Rule("UK_NHS", re.compile(_NOT_AFTER_CC + r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"), score=0.3, validate=checksums.nhs,
         checksum=True, context=_NHS_CONTEXT, context_required=True, min_digits=10, name="trustlayer:uk_nhs"),
    # Without context, a mod-11 match that is also a valid phone number is left to the phone rules.
    Rule("UK_NHS", re.compile(_NOT_AFTER_CC + r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"), score=0.6, validate=_nhs_not_phone,
         checksum=True, min_digits=10, name="trustlayer:uk_nhs_no_context"),
    Rule("UK_NINO", re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", _I), score=0.85,
         validate=checksums.uk_nino, context=("national insurance", "nino", "ni number", "ni no"),
         min_digits=6, name="trustlayer:uk_nino"),
    Rule("DE_TAX_ID", re.compile(_NOT_AFTER_CC + r"\b[1-9]\d(?: ?\d){9}\b"), score=0.55, validate=checksums.de_tax_id,
         checksum=True, context=("steuer", "tax", "idnr", "identifikationsnummer", "tin"),
         min_digits=11, name="trustlayer:de_tax_id"),
    Rule("DE_ID_CARD", re.compile(r"\b[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}\d?\b"), score=0.3,
         context=("personalausweis", "ausweis", "id card", "identity card", "id-karte", "dokumentnummer",
                  "document number"), context_score=0.9, context_required=True, min_digits=1,
         name="trustlayer:de_id_card"),
    Rule("FR_NIR", re.compile(
        r"\b[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b", _I),
        score=0.95, validate=checksums.fr_nir, checksum=True, min_digits=13, name="trustlayer:fr_nir"),
    Rule("IT_FISCAL_CODE", re.compile(
        r"\b[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b", _I),
        score=0.95, validate=checksums.it_fiscal_code, checksum=True, min_digits=7,
        name="trustlayer:it_fiscal_code"),
    Rule("ES_NIF", re.compile(_NOT_AFTER_CC + r"\b\d{8}[- ]?[A-Z]\b", _I), score=0.9, validate=checksums.es_nif,
         checksum=True,
         min_digits=8, name="trustlayer:es_nif"),
    Rule("ES_NIE", re.compile(r"\b[XYZ][- ]?\d{7}[- ]?[A-Z]\b", _I), score=0.95, validate=checksums.es_nie,
         checksum=True, min_digits=7, name="trustlayer:es_nie"),
    Rule("NL_BSN", re.compile(_NOT_AFTER_CC + r"\b\d{4}\.?\d{2}\.?\d{3}\b"), score=0.55, validate=checksums.nl_bsn,
         checksum=True, context=("bsn", "burgerservice", "sofi", "citizen service"), min_digits=9,
         name="trustlayer:nl_bsn"),
    Rule("MEDICAL_LICENSE", re.compile(r"\b[A-Z][A-Z9]\d{7}\b"), score=0.6, validate=checksums.dea,
         checksum=True, context=("dea", "licen", "prescri", "registration"), min_digits=7, name="trustlayer:dea"),
    Rule("MEDICAL_RECORD_NUMBER", re.compile(
        r"\b(?:MRN|medical record(?: number| no\.?| #)?|patient(?:[ -]?id| number| no\.?| #)|chart (?:number|no\.?|#)|"
        r"patienten-?(?:nummer|id)|n[°º] de dossier|fallnummer)"
        r"\s*(?:is|ist|:|#|=|-)?\s*#?\s*(?P<v>[A-Z]{0,4}-?\d{4,12})\b", _I),
        group="v", score=0.9, hint=("mrn", "record", "patient", "chart", "dossier", "fall"),
        min_digits=4, name="trustlayer:medical_record_number"),
)
