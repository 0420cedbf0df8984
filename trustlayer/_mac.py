"""HMAC-SHA256 with the key schedule done once per key.

``hmac.new(key, data, sha256)`` redoes the key's inner and outer pads on every call
(several microseconds with OpenSSL 3); the conversation id is derived on every
message, so the padded states are computed once and copied. The output is
byte-identical to ``hmac.new(key, data, hashlib.sha256).digest()``.
"""

from __future__ import annotations

import functools
import hashlib

__all__ = ["hmac_sha256"]

_BLOCK = 64  # SHA-256 block size in bytes


class _Keyed:
    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes) -> _Keyed:
    return _Keyed(key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """``HMAC-SHA256(key, data)``; the key's padded states are cached (up to 256 keys)."""
    return _keyed(key).digest(data)
