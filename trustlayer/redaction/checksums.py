"""Checksum validators for identifiers whose format carries one.

Each function takes the matched text (separators allowed) and returns whether the
check digits agree; none of them raises on malformed input::

    >>> luhn("4111 1111 1111 1111")
    True
    >>> iban("DE89 3704 0044 0532 0130 00")
    True
"""

from __future__ import annotations

import re

__all__ = [
    "IBAN_LENGTHS",
    "dea",
    "de_id_card",
    "de_tax_id",
    "es_nie",
    "es_nif",
    "fr_nir",
    "iban",
    "it_fiscal_code",
    "luhn",
    "nhs",
    "nl_bsn",
    "uk_nino",
]

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn(text: str) -> bool:
    """ISO/IEC 7812-1 Annex B (Luhn) check over the digits of ``text``."""
    digits = _digits(text)
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 13616 registry: IBAN length per country (SWIFT IBAN registry, release 2024). A country
# missing here is an IBAN that is never found, so keep it complete.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban(text: str) -> bool:
    """ISO 13616 / ISO 7064 mod-97-10 check, with the registry length for the country."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) < 15 or IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def nhs(text: str) -> bool:
    """NHS number: 10 digits, mod-11 check digit (NHS Data Dictionary)."""
    digits = _digits(text)
    if len(digits) != 10:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


_NINO = re.compile(r"^(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$")


def uk_nino(text: str) -> bool:
    """UK National Insurance number prefix and suffix rules (HMRC NIM39110)."""
    return bool(_NINO.match(_NON_ALNUM.sub("", text).upper()))


def de_tax_id(text: str) -> bool:
    """German Steuer-IdNr: 11 digits, ISO 7064 MOD 11,10 check digit, digit-repetition rule."""
    digits = _digits(text)
    if len(digits) != 11 or digits[0] == "0":
        return False
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    # BZSt rule: in the first ten digits exactly one digit repeats (twice or thrice).
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    product = 10
    for d in digits[:10]:
        total = (int(d) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(digits[10])


_ICAO_WEIGHTS = (7, 3, 1)


def de_id_card(text: str) -> bool:
    """German ID card document number with its ICAO 9303 check digit (10 characters)."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) != 10 or not s[9].isdigit():
        return False
    total = 0
    for i, c in enumerate(s[:9]):
        value = int(c) if c.isdigit() else ord(c) - 55
        total += value * _ICAO_WEIGHTS[i % 3]
    return total % 10 == int(s[9])


def fr_nir(text: str) -> bool:
    """French NIR: 13 characters + 2-digit key = 97 - (number mod 97); Corsica 2A/2B handled."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) != 15 or not s[13:].isdigit():
        return False
    body = s[:13].replace("2A", "19", 1) if s[5:7] == "2A" else s[:13]
    if s[5:7] == "2B":
        body = s[:5] + "18" + s[7:13]
    if not body.isdigit():
        return False
    return 97 - int(body) % 97 == int(s[13:])


_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]
_CF_OMOCODIA = "LMNPQRSTUV"


def it_fiscal_code(text: str) -> bool:
    """Italian codice fiscale: 16 characters, control character (DM 23/12/1976, omocodia allowed)."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) != 16 or not s.isalnum():
        return False
    total = 0
    for i, c in enumerate(s[:15]):
        value = int(c) if c.isdigit() else ord(c) - 65
        if value < 0 or value > 25:
            return False
        total += _CF_ODD[value] if i % 2 == 0 else value
    return chr(65 + total % 26) == s[15]


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_nif(text: str) -> bool:
    """Spanish DNI/NIF: 8 digits and the mod-23 control letter."""
    s = _NON_ALNUM.sub("", text).upper()
    return len(s) == 9 and s[:8].isdigit() and _NIF_LETTERS[int(s[:8]) % 23] == s[8]


def es_nie(text: str) -> bool:
    """Spanish NIE: X/Y/Z, 7 digits, mod-23 control letter (X=0, Y=1, Z=2)."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) != 9 or s[0] not in "XYZ" or not s[1:8].isdigit():
        return False
    return _NIF_LETTERS[int(str("XYZ".index(s[0])) + s[1:8]) % 23] == s[8]


def nl_bsn(text: str) -> bool:
    """Dutch BSN: 9 digits passing the eleven-test (weights 9..2 and -1)."""
    digits = _digits(text)
    if len(digits) != 9 or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0


def dea(text: str) -> bool:
    """US DEA registration number: 2 letters, 7 digits, check digit rule of 21 CFR 1301."""
    s = _NON_ALNUM.sub("", text).upper()
    if len(s) != 9 or not s[:2].isalpha() and not (s[0].isalpha() and s[1] == "9") or not s[2:].isdigit():
        return False
    d = [int(c) for c in s[2:]]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return check == d[6]
