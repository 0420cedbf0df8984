"""Offline public-suffix lookups: tldextract with its bundled snapshot, never the network.

tldextract fetches the public suffix list from publicsuffix.org on first use unless
told otherwise. Presidio's e-mail recognizer calls the module-level
``tldextract.extract``; :func:`install` points that module reference at an
extractor built with ``suffix_list_urls=()`` (no fetch) and ``cache_dir=None``
(no cache file), so detection stays offline.

    >>> from trustlayer.redaction._offline import registered_domain
    >>> registered_domain("mail.example.co.uk")
    'example.co.uk'
"""

from __future__ import annotations

import threading
import types
from functools import lru_cache
from typing import Any

import tldextract

__all__ = ["extractor", "install", "registered_domain"]

_lock = threading.Lock()
_installed = False


@lru_cache(maxsize=1)
def extractor() -> Any:
    """The process-wide offline ``TLDExtract`` (bundled public suffix list snapshot)."""
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def registered_domain(host: str) -> str:
    """The registrable domain of ``host`` (``""`` when its suffix is not a public suffix)."""
    result = extractor()(host)
    return str(result.top_domain_under_public_suffix)


def install() -> None:
    """Make Presidio's recognizers that use tldextract use the offline extractor (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from presidio_analyzer.predefined_recognizers.generic import email_recognizer

        offline = extractor()
        # The recognizer looks up ``tldextract.extract`` at call time through its module
        # global; replacing that global with a namespace keeps the rest of tldextract intact.
        setattr(email_recognizer, "tldextract",  # noqa: B010  # the module declares no such attribute
                types.SimpleNamespace(extract=offline, TLDExtract=tldextract.TLDExtract))
        _installed = True
