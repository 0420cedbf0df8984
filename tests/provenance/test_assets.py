"""Known-bad envelopes kept as files (tests/assets/provenance), checked against one trusted key."""

from pathlib import Path

import pytest

from trustlayer.errors import SignatureError
from trustlayer.provenance.keys import Keyring, VerifyKey
from trustlayer.provenance.records import Record

ASSETS = Path(__file__).parent.parent / "assets" / "provenance"


@pytest.fixture()
def ring() -> Keyring:
    ring = Keyring()
    ring.add(VerifyKey.from_file(ASSETS / "trusted_agent_a.pub"), owner="agent-a")
    return ring


def test_the_valid_record_still_verifies_and_keeps_its_format(ring: Keyring) -> None:
    record = Record.from_envelope((ASSETS / "record_valid.dsse.json").read_bytes(), ring)
    p = record.predicate
    assert (p.conversation_id, p.sequence, p.time, p.entity_counts) == ("conv-asset", 1, 1767323045678, {"PERSON": 1})
    assert (p.route.sender, p.route.recipient, p.route.channel) == ("agent-a", "agent-b", "agent_agent")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("record_tampered_payload_byte", "^bad signature"),
        ("record_untrusted_key", "^unknown key"),
        ("record_extra_envelope_field", "^bad envelope: not in trustlayer's canonical form"),
        ("record_float_in_payload", "must not contain floats"),
        ("record_names_another_key", "^record names key .* but is signed by key"),
        ("record_truncated", "^bad envelope: not valid JSON"),
    ],
)
def test_bad_envelope_files(ring: Keyring, name: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        Record.from_envelope((ASSETS / f"{name}.dsse.json").read_bytes(), ring)
