from __future__ import annotations

import pytest

from trustlayer.redaction import Redactor, checksums
from trustlayer.types import Message


@pytest.mark.parametrize(("check", "good", "bad"), [
    (checksums.luhn, "4111 1111 1111 1111", "4111 1111 1111 1112"),
    (checksums.luhn, "3782-822463-10005", "3782-822463-10006"),
    (checksums.iban, "DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 01"),
    (checksums.iban, "GB82WEST12345698765432", "GB82WEST1234569876543"),
    (checksums.nhs, "943 476 5919", "943 476 5918"),
    (checksums.uk_nino, "AB 12 34 56 C", "GB 12 34 56 C"),
    (checksums.de_tax_id, "86095742719", "86095742718"),
    (checksums.de_id_card, "T220001293", "T220001294"),
    (checksums.fr_nir, "1 84 12 76 451 089 46", "1 84 12 76 451 089 47"),
    (checksums.it_fiscal_code, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
    (checksums.es_nif, "12345678Z", "12345678A"),
    (checksums.es_nie, "X1234567L", "X1234567A"),
    (checksums.nl_bsn, "111222333", "111222334"),
    (checksums.dea, "AB1234563", "AB1234564"),
])
def test_checksum_accepts_valid_and_rejects_one_digit_off(check, good, bad):
    assert check(good)
    assert not check(bad)


@pytest.mark.parametrize("junk", ["", "x", "12", "ÄÖÜ", "0" * 40, "ZZ" * 9])
def test_checksums_never_raise_on_junk(junk):
    for name in checksums.__all__:
        fn = getattr(checksums, name)
        if callable(fn):
            assert fn(junk) in (True, False)


def _with_check_digits(country: str, bban: str) -> str:
    """A synthetic IBAN: ``bban`` under ``country`` with the ISO 7064 check digits that make it valid."""
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


# Countries the SWIFT IBAN registry added from 2021 on, with made-up account numbers of their lengths.
@pytest.mark.parametrize(("country", "bban"), [
    ("BI", "10000100010000332045181"), ("DJ", "00010000000154000100186"), ("FK", "SC123456789012"),
    ("HN", "CABF00000000000250005469"), ("LY", "002048000020100120361"), ("MN", "1234123456789123"),
    ("NI", "BAPR00000013000003558124"), ("OM", "0180000001299123456"), ("RU", "04452560040702810412345678901"),
    ("SD", "21290105012340"), ("SO", "1000001001000100141"), ("YE", "CBYE0001018861234567891234"),
])
def test_iban_of_every_registry_country_is_found(fast: Redactor, country: str, bban: str) -> None:
    value = _with_check_digits(country, bban)
    assert checksums.iban(value)
    out, findings = fast.redact(Message.from_text(f"please wire it to {value} today", conversation_id="c"))
    assert out.text is not None and value not in out.text
    assert [f.entity_type for f in findings] == ["IBAN_CODE"]
