"""The entity types redaction can detect, with what each one means.

Names follow Presidio where Presidio has one (``PERSON``, ``EMAIL_ADDRESS``, ...);
the rest are trustlayer's own. Policy files name data classes made of these types,
and the policy engine validates them against ``ENTITY_TYPES``::

    >>> from trustlayer.redaction.entities import ENTITY_TYPES, PATTERN_ENTITY_TYPES
    >>> "PERSON" in ENTITY_TYPES and "PERSON" not in PATTERN_ENTITY_TYPES
    True
    >>> "IBAN_CODE" in PATTERN_ENTITY_TYPES
    True

``PATTERN_ENTITY_TYPES`` are found by patterns, validators and context words alone;
when every type a destination needs is one of them, detection skips spaCy NER (the
fast path). ``OPT_IN_ENTITY_TYPES`` are only searched for when asked for by name
(``detect(..., entities={"DATE_TIME"})``): a bare date or a nationality is not
personal data by itself, and flagging it would alter clean text (a date of birth
in context is ``DATE_OF_BIRTH`` and is always searched for).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DEFAULT_ENTITY_TYPES",
    "DESCRIPTIONS",
    "ENTITY_TYPES",
    "NER_ENTITY_TYPES",
    "OPT_IN_ENTITY_TYPES",
    "PATTERN_ENTITY_TYPES",
    "VALIDATED_ENTITY_TYPES",
    "CREDENTIAL_ENTITY_TYPES",
]

_DESCRIPTIONS: dict[str, str] = {
    # -- found by spaCy NER (plus context rules for names) -------------------------------
    "PERSON": "a person's name: full names, lower-case names, non-English names, and first names "
              "alone where context shows a person (greetings, sign-offs, 'my name is')",
    "LOCATION": "a city, region, country or named place tied to a person (spaCy GPE/LOC/FAC)",
    "NRP": "nationality, religious or political group (spaCy NORP); opt-in",
    "DATE_TIME": "a date or time without a personal context (spaCy DATE/TIME); opt-in",
    # -- contact and network ------------------------------------------------------------
    "EMAIL_ADDRESS": "an e-mail address (RFC 5322 addr-spec; host checked against the bundled "
                     "public suffix list)",
    "PHONE_NUMBER": "a phone number in national or international (E.164) notation",
    "URL": "a URL or bare domain that can identify a person or a private resource",
    "IP_ADDRESS": "an IPv4 or IPv6 address (validated by the ipaddress module)",
    "MAC_ADDRESS": "an IEEE 802 MAC address (colon, dash or dotted notation)",
    "STREET_ADDRESS": "a street address: house number and street (English, German, French, Spanish, "
                      "Italian and Dutch street words), optionally with postcode and city",
    # -- financial ----------------------------------------------------------------------
    "CREDIT_CARD": "a payment card number in any grouping (Luhn-validated)",
    "CVV": "a card verification value (3-4 digits) named as such or next to a card number",
    "IBAN_CODE": "an International Bank Account Number (ISO 13616 mod-97 validated)",
    # -- identity and health ------------------------------------------------------------
    "DATE_OF_BIRTH": "a date in a birth context ('born on', 'DOB', 'date of birth', 'geboren')",
    "US_SSN": "a US Social Security number (area/group/serial rules)",
    "UK_NHS": "a UK NHS number (mod-11 validated)",
    "UK_NINO": "a UK National Insurance number (prefix rules of HMRC NIM39110)",
    "DE_ID_CARD": "a German identity card (Personalausweis) number, ICAO 9303 check digit when present, "
                  "or in context",
    "DE_TAX_ID": "a German tax identification number (Steuer-IdNr, ISO 7064 MOD 11,10 validated)",
    "FR_NIR": "a French social security number (NIR/INSEE, mod-97 key validated)",
    "IT_FISCAL_CODE": "an Italian codice fiscale (check character validated)",
    "ES_NIF": "a Spanish DNI/NIF (mod-23 letter validated)",
    "ES_NIE": "a Spanish foreigner identity number NIE (mod-23 letter validated)",
    "NL_BSN": "a Dutch citizen service number BSN (eleven-test validated)",
    "MEDICAL_LICENSE": "a US DEA registration number (checksum validated)",
    "MEDICAL_RECORD_NUMBER": "a medical record / patient number in context ('MRN', 'patient ID')",
    "HEALTH_CONDITION": "a condition, medication or procedure stated about a person ('I have asthma', 'my son "
                        "was diagnosed with epilepsy', 'I'm on metformin'); curated English term list, not "
                        "general questions ('what causes diabetes?'); negated statements included",
    # -- credentials and secrets --------------------------------------------------------
    "API_KEY": "a provider token with a known shape: AWS access key id, GitHub, GitLab, Slack, Stripe, "
               "OpenAI, Anthropic, Google API keys, Hugging Face, SendGrid, Twilio, npm, PyPI",
    "SECRET": "a high-entropy value assigned to a secret-looking name (secret, token, key, "
              "aws_secret_access_key, client_secret, ...)",
    "PASSWORD": "a password in a connection string (scheme://user:PASSWORD@host) or a "
                "password=/passwd:/pwd assignment",
    "PRIVATE_KEY": "a PEM or OpenSSH private key block (BEGIN ... PRIVATE KEY)",
    "JWT": "a JSON Web Token (three base64url parts, header decodes to JSON with 'alg')",
}

DESCRIPTIONS: Mapping[str, str] = MappingProxyType(_DESCRIPTIONS)
"""Entity type -> one sentence saying what it covers (for docs and ``trustlayer redact --help``)."""

ENTITY_TYPES: frozenset[str] = frozenset(_DESCRIPTIONS)
"""Every entity type a trustlayer detector can emit."""

NER_ENTITY_TYPES: frozenset[str] = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME"})
"""Entity types that need spaCy NER."""

PATTERN_ENTITY_TYPES: frozenset[str] = ENTITY_TYPES - NER_ENTITY_TYPES
"""Entity types detectable without NER: asking only for these takes the fast path."""

OPT_IN_ENTITY_TYPES: frozenset[str] = frozenset({"NRP", "DATE_TIME"})
"""Entity types searched for only when requested by name."""

DEFAULT_ENTITY_TYPES: frozenset[str] = ENTITY_TYPES - OPT_IN_ENTITY_TYPES
"""What ``detect(message)`` looks for when no entity list is given."""

VALIDATED_ENTITY_TYPES: frozenset[str] = frozenset({
    "CREDIT_CARD", "IBAN_CODE", "UK_NHS", "DE_TAX_ID", "FR_NIR", "IT_FISCAL_CODE", "ES_NIF", "ES_NIE",
    "NL_BSN", "MEDICAL_LICENSE", "IP_ADDRESS",
})
"""Entity types whose format carries a checksum or strict validator (the 0 % leak target)."""

CREDENTIAL_ENTITY_TYPES: frozenset[str] = frozenset({"API_KEY", "SECRET", "PASSWORD", "PRIVATE_KEY", "JWT"})
"""Credentials and secrets (the 0 % leak target)."""
