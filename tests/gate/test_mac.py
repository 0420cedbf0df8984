"""The cached-key HMAC must equal the standard library's HMAC-SHA256 for every key length."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from trustlayer._mac import hmac_sha256


@given(key=st.binary(min_size=0, max_size=200), data=st.binary(max_size=300))
def test_equals_stdlib_hmac(key: bytes, data: bytes) -> None:
    assert hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


def test_rfc4231_case_2() -> None:
    # RFC 4231, test case 2 (key shorter than the block).
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
