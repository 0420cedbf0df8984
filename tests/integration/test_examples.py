"""Every example runs as a user would run it, and does what it says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=600,
                         cwd=EXAMPLES.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_route_existing_router() -> None:
    out = run("route_existing_router.py")
    assert "c1: routed to us-cloud" in out
    assert "c2: routed to phone" in out
    assert "requests the cloud received: 1" in out


@pytest.mark.slow
def test_agents_signed() -> None:
    out = run("agents_signed.py")
    assert "password=<PASSWORD_" in out and "Winter2024" not in out
    assert "forged: rejected: SignatureError: content mismatch" in out
    assert "replayed: rejected: SignatureError: replayed nonce" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["openai_sdk_transport.py", "proxy_unmodified_client.py"])
def test_clients_never_reveal_the_address(name: str) -> None:
    out = run(name)
    assert "answer:" in out
    assert "the cloud saw the e-mail address: False" in out


def test_eu_residency_config_builds_a_layer(tmp_path: Path) -> None:
    from trustlayer import TrustLayer, load_config
    from trustlayer.provenance import SigningKey

    shutil.copy(EXAMPLES / "eu_residency.yaml", tmp_path / "trustlayer.yaml")
    SigningKey.generate().save(tmp_path / "keys" / "phone.key")
    cfg = load_config(tmp_path / "trustlayer.yaml")
    assert {e.id for e in cfg.endpoints} == {"phone", "eu-cloud", "us-cloud"}
    with TrustLayer.from_config(cfg) as tl:
        assert tl.route_to("eu-cloud").recipient.attestations == frozenset({"dpa"})
