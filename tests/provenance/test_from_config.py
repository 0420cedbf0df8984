import stat
from pathlib import Path

import pytest

from trustlayer.config import load_config
from trustlayer.errors import ConfigError, SignatureError
from trustlayer.provenance.from_config import authenticator_from_config, identity_key, signer_from_config
from trustlayer.provenance.keys import SigningKey
from trustlayer.types import Endpoint, Hop, Message, Route


def write_agent(root: Path, me: str, peer: str, peer_key: SigningKey | None, *, passphrase_env: str = "") -> Path:
    root.mkdir()
    peers = f'peers:\n  - {{id: {peer}, public_key: "{peer_key.public.to_base64()}"}}\n' if peer_key else ""
    extra = f", passphrase_env: {passphrase_env}" if passphrase_env else ""
    (root / "trustlayer.yaml").write_text(
        f"identity: {{id: {me}, key: keys/id.key{extra}}}\n"
        f"endpoints:\n  - {{id: {me}, kind: agent, jurisdiction: DE}}\n"
        f"  - {{id: {peer}, kind: agent, jurisdiction: FR}}\n" + peers
    )
    return root / "trustlayer.yaml"


def test_two_agents_from_their_configs(tmp_path: Path) -> None:
    a_key, b_key = SigningKey.generate(), SigningKey.generate()
    cfg_a = load_config(write_agent(tmp_path / "a", "agent-a", "agent-b", b_key))
    cfg_b = load_config(write_agent(tmp_path / "b", "agent-b", "agent-a", a_key))
    a_key.save(tmp_path / "a" / "keys" / "id.key")
    b_key.save(tmp_path / "b" / "keys" / "id.key")

    signer = signer_from_config(cfg_a)
    assert stat.S_IMODE((tmp_path / "a" / "keys" / "record.salt").stat().st_mode) == 0o600
    message = Message.from_text("hand over <PERSON_1>'s file", conversation_id="c-7")
    route = Route.between(cfg_a.me, cfg_b.me)
    signed = signer.sign(Hop(direction="outbound", route=route, conversation_id="c-7",
                             content=message.canonical_bytes()))
    assert (tmp_path / "a" / "keys" / "id.key.seq").exists()

    auth = authenticator_from_config(cfg_b)
    peer = auth.authenticate(signed.envelope, audience="agent-b", content=message.canonical_bytes())
    assert (peer.sender, peer.key_id, peer.conversation_id) == ("agent-a", a_key.key_id, "c-7")
    assert (tmp_path / "b" / "keys" / "replay.db").exists()

    # a record for b is no good at a third agent that trusts a as well
    stranger = Endpoint(id="agent-c", kind="agent", jurisdiction="DE")
    with pytest.raises(SignatureError, match="wrong audience"):
        auth.authenticate(signer.sign(Hop(direction="outbound", route=Route.between(cfg_a.me, stranger),
                                          conversation_id="c-7", content=b"x")).envelope,
                          audience="agent-b", content=b"x")


def test_identity_passphrase_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate()
    cfg = load_config(write_agent(tmp_path / "a", "agent-a", "agent-b", None, passphrase_env="TL_TEST_PASS"))
    key.save(tmp_path / "a" / "keys" / "id.key", passphrase="pw")
    monkeypatch.delenv("TL_TEST_PASS", raising=False)
    with pytest.raises(ConfigError, match=r"\$TL_TEST_PASS, which is not set"):
        identity_key(cfg)
    monkeypatch.setenv("TL_TEST_PASS", "pw")
    assert identity_key(cfg).key_id == key.key_id
