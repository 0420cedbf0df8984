import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.errors import SignatureError
from trustlayer.provenance.dsse import open_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey

KEY = SigningKey.generate()
RING = Keyring()
RING.add(KEY.public, owner="me")


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=512), payload_type=st.text(min_size=1, max_size=40))
def test_round_trip_any_payload_and_type(payload: bytes, payload_type: str) -> None:
    verified = open_envelope(sign_envelope(payload, payload_type, KEY), RING)
    assert (verified.payload, verified.payload_type, verified.key_id) == (payload, payload_type, KEY.key_id)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=1, max_size=128), where=st.floats(0, 1, exclude_max=True),
       flip=st.integers(1, 255))
def test_any_byte_change_is_rejected(payload: bytes, where: float, flip: int) -> None:
    envelope = bytearray(sign_envelope(payload, "application/vnd.in-toto+json", KEY))
    envelope[int(where * len(envelope))] ^= flip
    with pytest.raises(SignatureError):
        open_envelope(bytes(envelope), RING)
