"""Contact and network data: e-mail, phone, street address, IP and MAC addresses, profile URLs."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import phonenumbers

from trustlayer.redaction.recognizers.base import Rule

__all__ = ["RULES", "phone_shaped", "valid_phone"]

_I = re.IGNORECASE

# Regions tried for numbers written without a country code: the locales trustlayer
# targets first (US, UK, DE, FR, IT, ES, NL).
_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL")
_PHONE_CONTEXT = ("phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "sms", "text me", "reach me",
                  "ring", "handy", "telefon", "téléphone", "portable", "teléfono", "móvil", "cellulare")
_DATE_LIKE = re.compile(r"^\d{1,4}([./-])\d{1,2}\1\d{1,4}$")
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


@lru_cache(maxsize=4096)
def valid_phone(value: str) -> bool:
    """True when ``value`` is a valid number in its own country code or in one of the home regions."""
    digits = sum(c.isdigit() for c in value)
    if digits < 7 or digits > 17 or _DATE_LIKE.match(value.strip()) or _DOTTED_QUAD.match(value.strip()):
        return False
    number = value.strip()
    if number.startswith("00"):
        number = "+" + number[2:]
    regions: tuple[str | None, ...] = (None,) if number.startswith("+") else _REGIONS
    for region in regions:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return True
    return False


_PHONE_SHAPE = re.compile(r"^(?:\+|00|\()|\)|\d[\s.\-/]+\d+[\s.\-/]+\d|(?:x|ext\.?|#)\s*\d+$", re.IGNORECASE)


@lru_cache(maxsize=4096)
def phone_shaped(value: str) -> bool:
    """Written like a phone number and of a possible length, even if its numbering plan does not know it.

    Phone-like means a country code, an area code in brackets, grouped digits or an extension.
    """
    v = value.strip()
    digits = sum(c.isdigit() for c in v)
    if not 7 <= digits <= 15 or _DATE_LIKE.match(v) or _DOTTED_QUAD.match(v) or not _PHONE_SHAPE.search(v):
        return False
    number = "+" + v[2:] if v.startswith("00") else v
    for region in ((None,) if number.startswith("+") else _REGIONS):
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _phone_in_context(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    return 7 <= digits <= 15 and not _DATE_LIKE.match(value.strip())


def _ip(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    # The unspecified and loopback addresses identify no one.
    return not (address.is_unspecified or address.is_loopback)


def _ipv6(value: str) -> bool:
    return ("::" in value or value.count(":") == 7) and any(c.isalnum() for c in value) and _ip(value)


# USPS Publication 28, Appendix C1 street suffixes (the common ones) and UK usage.
_SUFFIXES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|"
    r"circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|crescent|close|gardens?|grove|hills?|park|"
    r"row|mews|walk|green|loop|alley|plaza|point|ridge|run|pike|path|port|crossing|views?|valley|village|"
    r"wells?|springs?|station|summit|track|junction|keys?|knolls?|lakes?|landing|manor|meadows?|mills?|"
    r"mission|motorway|mount|mountain|neck|orchard|oval|pass|passage|pines?|prairie|ramp|ranch|rapids?|"
    r"rest|route|shoals?|shores?|skyway|spur|stream|throughway|trace|tunnel|turnpike|underpass|unions?|"
    r"via|viaduct|vista|falls|ferry|fields?|flats?|ford|forest|forge|forks?|fort|freeway|glens?|harbou?r|"
    r"haven|heights|hollow|inlet|islands?|isle|branch|bridge|brooks?|burgs?|bypass|camp|canyon|cape|"
    r"causeway|centers?|centre|cliffs?|club|common|corners?|course|courts|cove|creek|crest|dale|dam|divide|"
    r"estates?|expressway|extensions?|gateway|greens|groves|harbors|lights?|loaf|locks?|lodge|plains?|"
    r"points|ports|radial|ridges|river|roads|shore|squares|stravenue|streets|ville|walks|wall|ways|"
    r"expy|ext|fwy|gdns|hts|jct|pt|rte|tpke"
)
_UNIT = r"(?:,?\s*(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|#)\s*#?[\w-]{1,6})?"
_US_TAIL = r"(?:,?\s*\n?\s*[A-Z][A-Za-z.'-]+(?:\s[A-Z][A-Za-z.'-]+){0,2},\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
_UK_POSTCODE = r"(?:,?\s*(?:[A-Z][A-Za-z'-]+\s*,?\s*)?[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?"
_NAME = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'-]*"
_NAME_ANY = r"[\wÀ-ÿ][\wÀ-ÿ'-]*"

_EN_ADDRESS = (r"(?:\b\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+"
               r"|\b(?i:flat|studio|apartment|apt\.?|unit)\s+\d{1,4}[A-Za-z]?,?\s+)"
               r"(?:" + _NAME + r"\s+){1,3}(?i:(?:" + _SUFFIXES + r")s?)\b\.?" + _UNIT + _US_TAIL + _UK_POSTCODE)
_EN_ADDRESS_LOWER = (r"\b\d{1,6}[a-z]?\s+(?:" + _NAME_ANY + r"\s+){1,3}(?i:(?:" + _SUFFIXES + r")s?)\b\.?" + _UNIT)
_ADDRESS_CONTEXT = ("live at", "lives at", "living at", "address", "located at", "ship to", "deliver",
                    "moved to", "send it to", "mail it to", "wohne", "adresse", "dirección", "indirizzo", "adres",
                    "home at", "stay at", "staying at")

_DE_ADDRESS = (r"\b(?:" + _NAME + r"-){0,3}[A-ZÄÖÜ][\wäöüß-]{2,}?" +
               r"(?i:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig|pfad)"
               r"\s+\d{1,4}\s?[a-zA-Z]?\b(?:,?\s*\d{5}\s+" + _NAME + r")?")
_FR_ADDRESS = (r"(?:\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+)?\b(?i:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|"
               r"all[ée]e|quai|route|cours|passage|square|voie|faubourg|sentier)\s+(?:(?:de|du|des|la|le)\s+|"
               r"l'|d')*" + _NAME + r"(?:\s+" + _NAME + r"){0,3}(?:,?\s*\d{5}\s+" + _NAME + r")?")
_ES_IT_ADDRESS = (r"\b(?:Calle|C/|Avenida|Avda\.?|Paseo|Plaza|Camino|Carretera|Ronda|Glorieta|Pasaje|Rambla|"
                  r"V[ií]a|Vial|Callej[óo]n|Cuesta|Urbanizaci[óo]n|Alameda|Acceso|Ca[ñn]ada|Pasadizo|"
                  r"Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Strada|Contrada|Borgo|Rotonda|Incrocio|Canale|"
                  r"Stretto|Lungomare)\s+(?:(?:de|del|la|las|los|el|della|dei|degli|di|delle|San|Santa)\s+)*"
                  + _NAME + r"(?:\s+" + _NAME + r"){0,3},?\s*(?:n[º°o]\.?\s*)?\d{1,4}[a-zA-Z]?\b"
                  r"(?:\s+(?:Piso|Puerta|Apt\.|Interno|Scala)\s+\d{1,3})?")
_NL_ADDRESS = (r"\b" + _NAME + r"(?:straat|laan|weg|plein|gracht|kade|singel|dijk|steeg|hof|dreef|pad|markt|baan|"
               r"boulevard|ring)\s+\d{1,4}(?:\s?[a-zA-Z]\b|-\d+)?(?:,?\s*\d{4}\s?[A-Z]{2}\s+" + _NAME + r")?")

RULES: tuple[Rule, ...] = (
    # The local part leaves out the URL delimiters / ? # = & (RFC 5322 allows them, addresses hardly use
    # them): "http://10.1.2.3/reset?email=ada@example.org" is the e-mail after "=", not one reaching back
    # over the host, which would lose to the validated IP address and leave the e-mail in clear. Presidio's
    # recognizer still finds the whole of an address that does use them.
    Rule("EMAIL_ADDRESS", re.compile(
        r"(?<![\w.+-])[\w.!$%'*+^`{|}~-]+@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}\b"),
        score=0.75, hint="@", name="trustlayer:email"),
    # The same in a URL with the @ percent-encoded ("?email=ada%40example.org", "/u/ada%2Bwork%40example.org"):
    # tool calls carry URLs. The local part may hold other %XX escapes, never a second %40.
    Rule("EMAIL_ADDRESS", re.compile(
        r"(?<![\w.+%-])(?:[\w.!$'*+^`{|}~-]|%(?!40)[0-9A-Fa-f]{2})+%40"
        r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}\b"),
        score=0.75, hint="%40", name="trustlayer:email-percent-encoded"),
    Rule("PHONE_NUMBER", re.compile(
        r"(?<![\w+/.-])(?:\+|00)?(?:\(\d{1,4}\)\s?|\d)[\d\s().\-/]{5,20}\d(?:\s*(?:x|ext\.?|#)\s*\d{1,5})?(?![\w.]*\d)",
        _I), score=0.75, validate=valid_phone, context=_PHONE_CONTEXT, context_score=0.9,
        min_digits=7, name="trustlayer:phone"),
    Rule("PHONE_NUMBER", re.compile(
        r"(?<![\w+/.-])(?:\+|00)?(?:\(\d{1,4}\)\s?|\d)[\d\s().\-/]{5,20}\d(?:\s*(?:x|ext\.?|#)\s*\d{1,5})?(?![\w.]*\d)",
        _I), score=0.6, validate=phone_shaped, context=_PHONE_CONTEXT, context_score=0.85,
        min_digits=7, name="trustlayer:phone_shaped"),
    Rule("PHONE_NUMBER", re.compile(
        r"(?<![\w+/.-])(?:\+|00)?(?:\(\d{1,4}\)\s?|\d)[\d\s().\-/]{5,18}\d(?![\w.]*\d)"), score=0.3,
        validate=_phone_in_context, context=_PHONE_CONTEXT, context_score=0.7, context_required=True,
        min_digits=7, name="trustlayer:phone_context"),
    Rule("IP_ADDRESS", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)"), score=0.9, validate=_ip,
         checksum=True, min_digits=4, name="trustlayer:ipv4"),
    Rule("IP_ADDRESS", re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*::?[0-9A-Fa-f:.]*[0-9A-Fa-f](?:%\w+)?(?![\w:])"),
         score=0.9, validate=_ipv6, checksum=True, hint=":", name="trustlayer:ipv6"),
    Rule("MAC_ADDRESS", re.compile(
        r"\b[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\b|\b[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b"),
        score=0.9, name="trustlayer:mac"),
    Rule("URL", re.compile(
        r"\b(?:https?://)?(?:www\.)?(?:linkedin\.com/in|facebook\.com|instagram\.com|twitter\.com|x\.com|"
        r"github\.com|gitlab\.com|t\.me|tiktok\.com|medium\.com|xing\.com/profile)/@?[A-Za-z0-9_.-]{2,}/?", _I),
        score=0.85, hint=(".com", "t.me"), name="trustlayer:profile_url"),
    Rule("STREET_ADDRESS", re.compile(_EN_ADDRESS), score=0.8, min_digits=1, name="trustlayer:street_address_en"),
    Rule("STREET_ADDRESS", re.compile(_EN_ADDRESS_LOWER, _I), score=0.4, context=_ADDRESS_CONTEXT,
         context_score=0.8, context_required=True, min_digits=1, name="trustlayer:street_address_context"),
    Rule("STREET_ADDRESS", re.compile(_DE_ADDRESS), score=0.85, min_digits=1, name="trustlayer:street_address_de"),
    Rule("STREET_ADDRESS", re.compile(_FR_ADDRESS), score=0.8, name="trustlayer:street_address_fr"),
    Rule("STREET_ADDRESS", re.compile(_ES_IT_ADDRESS), score=0.8, min_digits=1, name="trustlayer:street_address_es_it"),
    Rule("STREET_ADDRESS", re.compile(_NL_ADDRESS), score=0.85, min_digits=1, name="trustlayer:street_address_nl"),
)

