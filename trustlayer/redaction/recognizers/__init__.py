"""trustlayer's own recognizers, as Presidio ``EntityRecognizer`` objects.

>>> from trustlayer.redaction.recognizers import pattern_recognizers
>>> sorted(r.name for r in pattern_recognizers())[:2]
['trustlayer-contact', 'trustlayer-financial']
"""

from __future__ import annotations

from functools import lru_cache

from trustlayer.redaction.recognizers import contact, financial, health, identity, names, secrets
from trustlayer.redaction.recognizers.base import Rule, RuleRecognizer, Span, has_context

__all__ = ["Rule", "RuleRecognizer", "Span", "has_context", "pattern_recognizers"]


@lru_cache(maxsize=1)
def pattern_recognizers() -> tuple[RuleRecognizer, ...]:
    """The rule-based recognizers, built once per process."""
    return (
        RuleRecognizer("trustlayer-secrets", secrets.RULES),
        RuleRecognizer("trustlayer-financial", financial.RULES),
        RuleRecognizer("trustlayer-identity", identity.RULES),
        RuleRecognizer("trustlayer-contact", contact.RULES),
        RuleRecognizer("trustlayer-names", names.RULES),
        RuleRecognizer("trustlayer-health", health.RULES),
    )
