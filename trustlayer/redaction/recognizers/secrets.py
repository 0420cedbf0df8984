"""Credentials and secrets: provider tokens, JWTs, private keys, passwords, secret assignments.

Token shapes follow each provider's published format (prefix + alphabet + length);
a high-entropy value assigned to a secret-looking name is a ``SECRET`` even when
its provider is unknown.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

from trustlayer.redaction.recognizers.base import Rule

__all__ = ["RULES", "entropy", "is_jwt"]


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _secret_like(value: str) -> bool:
    # Random tokens mix classes and have high per-character entropy; words and
    # identifiers such as "my_config_value" do not.
    if len(value) < 12 or value.lower() in _NOT_SECRETS:
        return False
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value),
                   any(c.isdigit() for c in value)))
    return classes >= 2 and entropy(value) >= 3.0 and not value.isalpha()


_NOT_SECRETS = frozenset({"none", "null", "undefined", "changeme", "your_api_key_here", "<redacted>"})


def is_jwt(value: str) -> bool:
    """RFC 7519: the first part is base64url JSON naming an ``alg`` (RFC 7515 4.1.1)."""
    head = value.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


_NEXT_PARAM = re.compile(r"&[\w.-]+=|[,;)\]}]+$")


def _unquoted_end(value: str) -> int:
    """Where an unquoted value ends: before the next ``&name=`` of a query string, or trailing punctuation."""
    match = _NEXT_PARAM.search(value)
    return match.start() if match and match.start() > 0 else len(value)


def _password_value(value: str) -> bool:
    v = value.strip("\"'")
    return bool(v) and v.lower() not in _NOT_PASSWORDS and not v.startswith(("<", "${", "{{", "%("))


_NOT_PASSWORDS = frozenset({
    "none", "null", "true", "false", "required", "optional", "string", "str", "password", "****", "***",
    "changeme", "redacted", "<redacted>", "xxx", "secret", "is", "was", "for", "and", "the", "reset",
    "manager", "field", "policy", "hash", "protected", "-",
})

_SECRET_NAMES = (
    r"(?:[A-Za-z0-9]+[_.-])*(?:secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credentials?|"
    r"private[_-]?key|client[_-]?secret|signing[_-]?key|session[_-]?key|encryption[_-]?key|"
    r"webhook[_-]?secret|salt)(?:[_.-][A-Za-z0-9]+)*"
)
_PASSWORD_NAMES = (
    r"(?:[A-Za-z0-9]+[_.-])*(?:password|passwd|passwort|kennwort|pwd|pass|passphrase|contrase[ñn]a|"
    r"mot[ _]de[ _]passe|parola[ _]d[ei][ _]accesso)(?:[_.-][A-Za-z0-9]+)*"
)

_I = re.IGNORECASE
RULES: tuple[Rule, ...] = (
    Rule("PRIVATE_KEY", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)", re.DOTALL),
        score=1.0, hint="private key", name="trustlayer:private_key_block"),
    Rule("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
         score=0.95, validate=is_jwt, checksum=True, hint="eyj", name="trustlayer:jwt"),
    Rule("API_KEY", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b"),
         score=0.95, hint=("akia", "asia", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "apka"),
         name="trustlayer:aws_access_key_id"),
    Rule("API_KEY", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
         score=1.0, hint=("gh", "github_pat"), name="trustlayer:github_token"),
    Rule("API_KEY", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), score=1.0, hint="glpat-",
         name="trustlayer:gitlab_token"),
    Rule("API_KEY", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), score=1.0, hint="xox",
         name="trustlayer:slack_token"),
    Rule("API_KEY", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}"), score=1.0,
         hint="hooks.slack", name="trustlayer:slack_webhook"),
    Rule("API_KEY", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bwhsec_[A-Za-z0-9]{24,}"),
         score=1.0, hint=("_live_", "_test_", "whsec_"), name="trustlayer:stripe_key"),
    Rule("API_KEY", re.compile(r"\bsk-(?:ant-[a-z]+\d*-|proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_-]{20,}"),
         score=0.95, hint="sk-", name="trustlayer:llm_api_key"),
    Rule("API_KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), score=1.0, hint="aiza",
         name="trustlayer:google_api_key"),
    Rule("API_KEY", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), score=0.95, hint="hf_",
         name="trustlayer:huggingface_token"),
    Rule("API_KEY", re.compile(r"\bSG\.[\w-]{22}\.[\w-]{43}\b"), score=1.0, hint="sg.",
         name="trustlayer:sendgrid_key"),
    Rule("API_KEY", re.compile(r"\bSK[0-9a-f]{32}\b"), score=0.9, min_digits=1, name="trustlayer:twilio_key"),
    Rule("API_KEY", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), score=1.0, hint="npm_", name="trustlayer:npm_token"),
    Rule("API_KEY", re.compile(r"\bpypi-[A-Za-z0-9_-]{50,}"), score=1.0, hint="pypi-",
         name="trustlayer:pypi_token"),
    # scheme://user:PASSWORD@host (RFC 3986 3.2.1 userinfo)
    Rule("PASSWORD", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:(?P<v>[^\s@/'\"]+)@[\w.-]"),
         group="v", score=1.0, hint="://", name="trustlayer:url_password"),
    Rule("PASSWORD", re.compile(
        r"(?:^|(?<=[^A-Za-z0-9]))" + _PASSWORD_NAMES +
        r"[\"']?\s*(?:[:=]|=>|:=)\s*[\"'`]?"
        r"(?P<v>(?<=[\"'`])[^\"'`\n]{1,200}(?=[\"'`])|(?<![\"'`])[^\s\"'`]+)",
        _I), group="v", score=0.95, validate=_password_value, refine=_unquoted_end,
        hint=("pass", "pwd", "kennwort", "contrase",
                                                                   "parola"),
        name="trustlayer:password_assignment"),
    Rule("PASSWORD", re.compile(
        r"\b(?:password|passwort|passcode|pw|pin|mot de passe|contrase[ñn]a)\s+(?:is|ist|est|es|was|:)\s*"
        r"[\"'`]?(?P<v>[^\s\"'`]{4,})(?<![.,;:!?])", _I),
        group="v", score=0.9, validate=_password_value, hint=("pass", "pw", "pin", "contrase"),
        name="trustlayer:password_phrase"),
    Rule("SECRET", re.compile(r"\baws_secret_access_key\s*[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})\b", _I),
         group="v", score=1.0, hint="aws_secret", name="trustlayer:aws_secret_key"),
    Rule("SECRET", re.compile(
        r"(?:^|(?<=[^A-Za-z0-9]))" + _SECRET_NAMES +
        r"[\"']?\s*(?:[:=]|=>|:=)\s*[\"'`]?(?P<v>[A-Za-z0-9+/=_\-.~]{12,})", _I),
        group="v", score=0.9, validate=_secret_like,
        hint=("secret", "token", "key", "cred", "salt"), name="trustlayer:secret_assignment"),
    Rule("SECRET", re.compile(r"\b(?:Bearer|Basic|Token)\s+(?P<v>[A-Za-z0-9+/=_\-.~]{16,})"),
         group="v", score=0.9, validate=_secret_like, hint=("bearer", "basic", "token"),
         name="trustlayer:authorization_header"),
    # Command-line password flags: mysql -p'secret', --password=secret
    Rule("PASSWORD", re.compile(r"(?:^|\s)(?:-p|--password[= ]|--pass[= ])[ ]?[\"']?(?P<v>[^\s\"']{4,})"),
         group="v", score=0.85, validate=_password_value, hint=("-p", "--pass"), name="trustlayer:password_flag"),
)
