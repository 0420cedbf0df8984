"""Pattern recognizers through the real detector (no spaCy): each case names the value it must find."""

from __future__ import annotations

import json

import pytest

from trustlayer.redaction import PATTERN_ENTITY_TYPES, Redactor
from trustlayer.types import Message

FOUND = [
    ("API_KEY", "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("API_KEY", "token ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5 works", "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"),
    ("API_KEY", "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
     "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("API_KEY", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("API_KEY", "OPENAI_API_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34"),
    ("JWT", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0"),
    ("PRIVATE_KEY", "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nbye",
     "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"),
    ("PRIVATE_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (truncated",
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (truncated"),
    ("PASSWORD", "DATABASE_URL=postgres://app:s3cr3t-P4ss@db.internal:5432/app", "s3cr3t-P4ss"),
    ("PASSWORD", "db_password: 'correct horse battery'", "correct horse battery"),
    ("PASSWORD", "my password is Tr0ub4dor&3.", "Tr0ub4dor&3"),
    ("SECRET", "client_secret=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("CREDIT_CARD", "card 4111-1111-1111-1111 exp 12/27", "4111-1111-1111-1111"),
    ("CREDIT_CARD", "amex 378282246310005.", "378282246310005"),
    ("CREDIT_CARD", "pay with 5555 5555 5555 4444 123", "5555 5555 5555 4444"),
    ("CVV", "pay with 5555 5555 5555 4444 123", "123"),
    ("CVV", "the CVV is 987", "987"),
    ("IBAN_CODE", "IBAN: DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "send to GB82WEST12345698765432 today", "GB82WEST12345698765432"),
    ("US_SSN", "SSN 123-45-6789", "123-45-6789"),
    ("UK_NHS", "NHS number 943 476 5919", "943 476 5919"),
    ("UK_NINO", "my NI number is AB 12 34 56 C", "AB 12 34 56 C"),
    ("DE_TAX_ID", "Steuer-ID 86095742719", "86095742719"),
    ("DE_ID_CARD", "Personalausweis Nr. T220001293", "T220001293"),
    ("FR_NIR", "numéro de sécu 1 84 12 76 451 089 46", "1 84 12 76 451 089 46"),
    ("IT_FISCAL_CODE", "codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    ("ES_NIF", "DNI 12345678Z", "12345678Z"),
    ("ES_NIE", "NIE X1234567L", "X1234567L"),
    ("NL_BSN", "mijn BSN is 111222333", "111222333"),
    ("MEDICAL_LICENSE", "DEA number AB1234563", "AB1234563"),
    ("MEDICAL_RECORD_NUMBER", "Patient MRN: 00123456, admitted", "00123456"),
    ("DATE_OF_BIRTH", "I was born on 17 March 1984 in Leeds", "17 March 1984"),
    ("DATE_OF_BIRTH", "DOB: 1990-05-17", "1990-05-17"),
    ("EMAIL_ADDRESS", "write to jürgen.müller@beispiel.de", "jürgen.müller@beispiel.de"),
    ("PHONE_NUMBER", "call +1 415-555-2671 now", "+1 415-555-2671"),
    ("PHONE_NUMBER", "Tel. 030 12345678", "030 12345678"),
    ("PHONE_NUMBER", "ring me on 07700 900123", "07700 900123"),
    ("IP_ADDRESS", "ssh root@10.1.2.3 -p 22", "10.1.2.3"),
    ("IP_ADDRESS", "host 2001:db8::8a2e:370:7334 is down", "2001:db8::8a2e:370:7334"),
    ("MAC_ADDRESS", "mac 00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"),
    ("URL", "see https://www.linkedin.com/in/ada-lovelace", "https://www.linkedin.com/in/ada-lovelace"),
    ("STREET_ADDRESS", "ship to 221B Baker Street, London NW1 6XE", "221B Baker Street, London NW1 6XE"),
    ("STREET_ADDRESS", "Ich wohne in der Hauptstraße 5, 10115 Berlin.", "Hauptstraße 5, 10115 Berlin"),
    ("STREET_ADDRESS", "j'habite 12, rue de la Paix", "12, rue de la Paix"),
    ("STREET_ADDRESS", "vivo en Calle de Alcalá 42", "Calle de Alcalá 42"),
    ("STREET_ADDRESS", "abito in Via Roma 10", "Via Roma 10"),
    ("STREET_ADDRESS", "Kerkstraat 12, 1017 GM Amsterdam", "Kerkstraat 12, 1017 GM Amsterdam"),
    ("STREET_ADDRESS", "i live at 42 elm street", "42 elm street"),
    ("PERSON", "my name is maria garcía, i need help", "maria garcía"),
    ("PERSON", "hey anna, can you check the logs?", "anna"),
    ("PERSON", "Thanks for the help!\n\nCheers,\nJürgen", "Jürgen"),
    ("PERSON", "Please forward this to Dr. Okonkwo today", "Okonkwo"),
    ("PERSON", '{"first_name": "siobhan"}', "siobhan"),
]


def _found(redactor: Redactor, text: str) -> set[tuple[str, str]]:
    msg = Message.from_text(text, conversation_id="t")
    return {(f.entity_type, text[f.start:f.end]) for f in redactor.detect(msg)}


@pytest.mark.parametrize(("entity", "text", "value"), FOUND, ids=[f"{c[0]}-{i}" for i, c in enumerate(FOUND)])
def test_pattern_finds_value(fast: Redactor, entity: str, text: str, value: str) -> None:
    assert (entity, value) in _found(fast, text)


CLEAN = [
    "Upgrade to version 3.12.1 before 2024-05-01, it fixes CVE-2024-3094.",
    "The invoice total is $1,234.56 (EUR 1.149,80) for order #4111111145.",
    "Deployed at 2024-05-01T12:30:45Z, build 20240501.3, commit 3f9a2c1d.",
    "def get_user_name(user_id: int) -> str: return cache[user_id]",
    "Call the API with timeout=30 and retries=5; the limit is 1000 requests/min.",
    "Meeting moved to 3 pm on Friday, room 4.12; bring 2 copies.",
    "Version 10.0.19041.1 of Windows and python 3.11.7 are supported.",
    "Hello world! Hi there, can you help me write a haiku about autumn?",
    "UUID 123e4567-e89b-12d3-a456-426614174000 and sha256 "
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Thanks, that works. Regards,\nThe team",
    "The ratio was 3.14159 and the batch size 256; lr=0.001.",
    "Tracking number 1Z999AA10123456784 shipped; ticket JIRA-4412 closed.",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_has_no_findings(fast: Redactor, text: str) -> None:
    assert _found(fast, text) == set()


def test_pattern_types_are_declared() -> None:
    from trustlayer.redaction.recognizers import pattern_recognizers

    emitted = {r.entity_type for rec in pattern_recognizers() for r in rec.rules}
    assert emitted - {"PERSON", "LOCATION"} <= PATTERN_ENTITY_TYPES


@pytest.mark.parametrize("url", ["http://10.1.2.3/reset?email=ada@example.org",
                                 "http://[2001:db8::7]/u/ada@example.org/profile"])
def test_email_in_a_url_with_an_ip_address_host_is_redacted(fast: Redactor, url: str) -> None:
    # The e-mail pattern's local part reaches back over the host; the validated address won that overlap
    # and the e-mail was dropped whole.
    text = f"open {url} now"
    tool_call = Message.from_openai([{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
        "name": "fetch", "arguments": json.dumps({"url": url})}}]}], conversation_id="t")
    for msg in (Message.from_text(text, conversation_id="t"), tool_call):
        out, _ = fast.redact(msg)
        wire = json.dumps(out.to_openai())
        assert "ada@example.org" not in wire and "10.1.2.3" not in wire and "2001:db8::7" not in wire
        assert fast.restore(out) == msg


@pytest.mark.parametrize(("url", "local"), [
    ("https://crm.example.com/reset?email=ada%40example.org&next=%2F", "ada"),
    ("https://crm.example.com/u/ada.lovelace%2Bwork%40example.co.uk/profile", "lovelace"),
    ("https://crm.example.com/u/ADA%40EXAMPLE.ORG", "ADA"),
])
def test_a_percent_encoded_email_in_a_url_is_redacted(fast: Redactor, url: str, local: str) -> None:
    # Tool calls carry URLs, and URLs carry e-mails with the @ encoded as %40.
    tool_call = Message.from_openai([{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
        "name": "fetch", "arguments": json.dumps({"url": url})}}]}], conversation_id="t")
    for msg in (Message.from_text(f"open {url} now", conversation_id="t"), tool_call):
        out, findings = fast.redact(msg)
        wire = json.dumps(out.to_openai())
        assert local not in wire and "%40" not in wire and "crm.example.com" in wire
        assert [f.entity_type for f in findings] == ["EMAIL_ADDRESS"]
        assert fast.restore(out) == msg


def test_percent_encoded_text_without_an_email_is_left_alone(fast: Redactor) -> None:
    for text in ("see https://example.com/a%20b?q=%40home", "price 100%40 off", "x%40y"):
        out, findings = fast.redact(Message.from_text(text, conversation_id="t"))
        assert findings == [] and out.text == text
