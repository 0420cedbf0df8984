"""Names that statistical NER misses: lower case, non-English, first names alone.

Context shows a person: a greeting or a sign-off line, "my name is" (and its German,
French, Spanish, Italian and Dutch forms), a title (Mr, Frau, Mme, Sra, Dott.), or a
name-like field (``name:``, ``patient=``, ``"first_name": ...``). A name ends at the
first common word, so "hi there" or "my name is not important" finds nothing.
"""

from __future__ import annotations

import re

from trustlayer.redaction.recognizers.base import Rule

__all__ = ["RULES", "STOPWORDS", "name_length"]

STOPWORDS: frozenset[str] = frozenset("""
a about above after again all also am an and any anyone anything are as ask at back be because been before
being below best both but by can cannot could day dear did do does doing done down during each either else
enough even ever every everybody everyone everything few fine first folks for from friends further get gets
glad going gonna good got guys had has have having he hello her here hers herself hey hi him himself his how
i if im in into is it its itself just last later let like looking lot lots madam me mine more morning most
much must my myself need new next no nor not now of off ok okay on once only or other our ours ourselves
out over own people please pretty quick quite rather ready really regards same see she should since so some
someone something sorry still such sure team than thank thanks that the their theirs them then there these
they this those through to today together tomorrow too trying under until up upon us very want was we well
were what when where which while who whom why will with within without would yes yesterday yet you your
yours yourself yourselves afternoon evening night sir world support admin customer user assistant bot
chatgpt claude gpt ai everybody all writing working happy interested currently just reaching following
advance again feedback update help question quick issue problem request note reminder meeting call
und ich bin der die das zusammen alle ist nicht ein eine et je suis le la les tous vous nous y el los las
todos e il lo tutti en de het allemaal van een is wir sie er es ihr und oder aber nur auch noch schon
hola hallo bonjour salut ciao hoi buongiorno buenos dias estimado estimada querido querida caro cara
liebe lieber sehr geehrte geehrter herr frau beste gentile team equipo squadra
call ask tell email mail send meet met contact ping cc invite remind forward reply write said says told
monday tuesday wednesday thursday friday saturday sunday mr mrs ms dr prof mein meine mijn mio mia
tengo il mi ma mon mes nummer number convert write summarize summarise translate explain sort give list
create generate fix refactor compare calculate show find make check describe draft rewrite add remove
update delete build run test deploy install open close read review plan book order cancel schedule
nie nif dni bsn nhs ssn id iban mrn dea steuer-id personalausweis
""".split())

_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’-]*"
_CAP = r"[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'’-]*"


PARTICLES: frozenset[str] = frozenset(
    "van von der den de du da di del della dos das la le ten ter y zu bin al ibn af av".split())
"""Lower-case words inside names (Pauline du Chartier, Rens van Arnsberg)."""


def name_length(value: str) -> int | None:
    """Length of the leading run of name words in ``value`` (``None`` if it starts with a common word).

    Particles (``van``, ``de la``) count only between two name words.
    """
    end = 0
    for match in re.finditer(r"\S+", value):
        word = match.group().strip(",.;:!?\"'()")
        folded = word.lower().replace("'", "").replace("’", "")
        if end and word.lower() in PARTICLES and match.group() == word:
            continue
        if not word or folded in STOPWORDS or not word[0].isalpha() or len(word) < 2:
            break
        end = match.start() + len(match.group().rstrip(",.;:!?\"')"))
        if match.group() != match.group().rstrip(",.;:!?\"')"):
            break
    return end or None


def _capitalized(value: str) -> bool:
    return all(w[0].isupper() for w in value.split() if w.lower() not in PARTICLES)


_I = re.IGNORECASE
_PARTICLE = r"(?:(?:" + "|".join(sorted(PARTICLES)) + r")[ \t]+){0,2}"
_ANY_NAME = r"(?P<v>" + _WORD + r"(?:[ \t]+" + _WORD + r"){0,3})"
_CAP_NAME = r"(?P<v>" + _CAP + r"(?:[ \t]+" + _PARTICLE + _CAP + r"){0,2})"
_CAP_NAME_CS = r"(?P<v>(?-i:" + _CAP + r"(?:[ \t]+" + _PARTICLE + _CAP + r"){0,3}))"

RULES: tuple[Rule, ...] = (
    Rule("PERSON", re.compile(
        r"\b(?:my name is|my name's|my names|my name[,:]|call me|i am called|i'm called|named|signed(?: by)?|"
        r"sign(?:ed)? it|"
        r"mein name ist|ich hei(?:ß|ss)e|"
        r"je m'appelle|mon nom est|me llamo|mi nombre es|mi chiamo|il mio nome è|mijn naam is|ik heet)"
        r"\s+" + _ANY_NAME, _I),
        group="v", score=0.85, refine=name_length,
        hint=("name", "call", "hei", "appelle", "nom", "llamo", "nombre", "chiamo", "naam", "heet", "sign"),
        name="trustlayer:name_intro"),
    Rule("PERSON", re.compile(
        r"\b(?:i'm|i am|this is|it's|ich bin|je suis|soy|sono|ik ben)\s+" + _CAP_NAME, _I),
        group="v", score=0.6, refine=name_length, validate=_capitalized,
        hint=("i'm", "i am", "this is", "it's", "bin", "suis", "soy", "sono", "ben"), name="trustlayer:name_self"),
    Rule("PERSON", re.compile(
        r"(?:^|\n|: )[ \t]*(?:hi|hello|hey|dear|hallo|liebe[r]?|sehr geehrte[r]?(?: herr| frau)?|bonjour|salut|"
        r"cher|ch[èe]re|hola|estimad[oa]|querid[oa]|ciao|car[oa]|gentile|buongiorno|beste|hoi|good morning|"
        r"good afternoon|good evening|morning|thanks|thank you)[ \t,]+" + _ANY_NAME + r"(?=\s*(?:[,!.:;\n]|$))",
        _I), group="v", score=0.8, refine=name_length, name="trustlayer:name_greeting"),
    Rule("PERSON", re.compile(
        r"\b(?:regards|best|cheers|thanks|thank you|sincerely|yours|br|kind regards|best wishes|grüße|grüsse|"
        r"gruß|gruss|lg|cordialement|bien à vous|saludos|atentamente|un saluto|saluti|groet|groeten)[,.!]?"
        r"[ \t]*\n[ \t]*" + _ANY_NAME + r"[ \t]*(?=\n|$)", _I),
        group="v", score=0.8, refine=name_length, hint="\n", name="trustlayer:name_signoff"),
    Rule("PERSON", re.compile(
        r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Sig|Sig\.ra|Dott|Dott\.ssa|Dhr|Mevr)"
        r"\.?[ \t]+" + _CAP_NAME),
        group="v", score=0.85, refine=name_length, name="trustlayer:name_title"),
    Rule("PERSON", re.compile(
        r"(?:^|(?<=[\s{,\"']))[\"']?(?:name|full[_ ]?name|first[_ ]?name|last[_ ]?name|given[_ ]?name|"
        r"family[_ ]?name|surname|patient(?:[_ ]name)?|customer(?:[_ ]name)?|contact(?:[_ ]name)?|"
        r"employee(?:[_ ]name)?|recipient|attn|vorname|nachname|nom|pr[ée]nom|nombre|apellidos?|nome|cognome|"
        r"naam|voornaam|achternaam|holder|account[_ ]holder|beneficiary|payee|owner|signatory)[\"']?[ \t]*[:=][ \t]*"
        r"[\"']?" + _ANY_NAME, _I),
        group="v", score=0.8, refine=name_length,
        hint=("name", "patient", "customer", "contact", "employee", "recipient", "attn", "nom", "nombre",
              "apellido", "naam", "holder", "beneficiary", "payee", "owner", "signatory"),
        name="trustlayer:name_field"),
    # A first name as the subject of a person's action: "; Sandra will sign it."
    Rule("PERSON", re.compile(r"(?:^|[;.!?:,][ \t]+|\n)(?P<v>" + _CAP + r")[ \t]+(?:will|would|can|could|should|must|"
                              r"has to|needs to|is going to)[ \t]+(?:sign|call|send|pay|review|approve|meet|join|"
                              r"visit|email|confirm|reply|text|bring|pick|drive|cover|attend|come)\b"),
         group="v", score=0.6, refine=name_length, name="trustlayer:name_subject"),
    # RFC 5322 3.4: a display name before an address in angle brackets names its owner.
    Rule("PERSON", re.compile(_CAP_NAME_CS + r"(?:[ \t]+[A-Z][\w.]*\.)?[ \t]*[<(][^<>()@\s]+@"), group="v",
         score=0.8, refine=name_length, hint="@", name="trustlayer:name_display"),
    # "who" refers to a person: "a bio for Edgardo Urrutia Arteaga, who ..."
    Rule("PERSON", re.compile(_CAP_NAME_CS + r",?[ \t]+who\b"), group="v", score=0.7, refine=name_length,
         hint="who", name="trustlayer:name_who"),
    # Two or more capitalized words after a verb or preposition that takes a person.
    Rule("PERSON", re.compile(
        r"\b(?:for|with|by|cc|ask|tell|call|text|email|ping|meet|thank|find|contact|invite|remind|from|to|"
        r"holder|beneficiary|payee|owner|titular|inhaber|titulaire|intestatario)"
        r"[ \t]+" + r"(?P<v>(?-i:" + _CAP + r"(?:[ \t]+" + _PARTICLE + _CAP + r"){1,3}))", _I),
        group="v", score=0.6, refine=name_length, validate=_capitalized, name="trustlayer:name_object"),
    # One capitalized word as the object of a verb that takes a person ("please text Nicolasa").
    Rule("PERSON", re.compile(r"\b(?:text|call|ping|ask|tell|remind|cc|thank|meet|invite|message|dm)[ \t]+"
                              r"(?P<v>(?-i:" + _CAP + r"))\b(?![ \t]*[-:(])", _I),
         group="v", score=0.55, refine=name_length, validate=_capitalized, name="trustlayer:name_object_single"),
    # Logins in sshd/PAM log lines and owners in device names ("laptop-Bente").
    Rule("PERSON", re.compile(r"\b(?:password|publickey|keyboard-interactive/pam) for (?:invalid user )?"
                              r"(?P<v>[^\s@]{2,32}) from\b"), group="v", score=0.8, hint=" for ",
         name="trustlayer:name_login"),
    Rule("PERSON", re.compile(r"\b(?:laptop|desktop|macbook|iphone|ipad|android|pc|workstation)-(?P<v>"
                              + _CAP + r")\b", _I),
         group="v", score=0.7, hint=("laptop", "desktop", "macbook", "iphone", "ipad", "android", "pc",
                                     "workstation"), name="trustlayer:name_device"),
    # A place tied to a person: "lives in Zaragoza", "moved to West Kieran".
    Rule("LOCATION", re.compile(
        r"\b(?:live|lives|living|based|moved|relocated|born|reside|resides|residing|wohne|lebe|habite|vivo|abito|"
        r"woon)[ \t]+(?:in|to|at|near|en|a|in der|op)[ \t]+(?P<v>(?-i:" + _CAP +
        r"(?:[ -](?:(?:sur|sous|le|la|les|de|du|am|an|upon|on|en|im|di|del)[ -])*" + _CAP + r"){0,2}))",
        _I), group="v", score=0.75, refine=name_length,
        hint=("liv", "based", "moved", "relocated", "born", "resid", "wohne", "lebe", "habite", "vivo", "abito",
              "woon"),
        name="trustlayer:place_personal"),
)
