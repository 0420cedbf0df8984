from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.config import Config, IdentityConfig, VerifyConfig
from trustlayer.errors import ConfigError
from trustlayer.types import Endpoint
from trustlayer.verifiers.reputation import SQLiteAgreementStore
from trustlayer.verifiers.setup import consensus_from_config

ENDPOINTS = (
    Endpoint(id="phone", kind="device", jurisdiction="DE", box="white"),
    Endpoint(id="a", kind="cloud", jurisdiction="US", url="http://127.0.0.1:9/v1"),
    Endpoint(id="b", kind="cloud", jurisdiction="DE", url="http://127.0.0.1:9/v1"),
)


def config(*ids: str) -> Config:
    return Config(identity=IdentityConfig(id="phone", key="k.pem"), endpoints=ENDPOINTS,
                  verify=VerifyConfig(endpoints=ids, dissent_threshold=0.4))


def test_panel_follows_the_config_order(tmp_path: Path) -> None:
    consensus = consensus_from_config(config("b", "a", "phone"), store=SQLiteAgreementStore(tmp_path / "r.db"))
    assert [e.id for e in consensus.panel] == ["b", "a", "phone"]


def test_an_empty_panel_is_refused() -> None:
    with pytest.raises(ConfigError, match="verify.endpoints is empty"):
        consensus_from_config(config())
