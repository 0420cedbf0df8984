"""The trained private router inside ``@route``: real TrustLayer (Presidio, eu-gdpr policy, Ed25519 records,
SQLite audit log) and real uncertainty signals from the local SmolLM2 model via llama.cpp (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trustlayer import TrustLayer, conversation, route
from trustlayer.audit.store import open_store
from trustlayer.audit.verify import verify_log
from trustlayer.provenance import Keyring, SigningKey
from trustlayer.routing.adapter import RouterFunction
from trustlayer.routing.labels import signals_from_score
from trustlayer.routing.model import TrainConfig
from trustlayer.routing.router import PrivateRouter
from trustlayer.routing.simulate import simulated_routing_set
from trustlayer.routing.train import train_router
from trustlayer.verifiers.whitebox import WhiteBoxScorer

HEALTH = "what dose of warfarin is safe with alcohol for patient MRN 48213377, step by step"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[PrivateRouter, SigningKey]:
    key = SigningKey.generate()
    router = train_router(simulated_routing_set(800, seed=1),
                          TrainConfig(epsilon=3.0, epochs=5, batch_size=64, n_features=512), key=key)
    directory = router.save(tmp_path_factory.mktemp("router") / "r")
    return PrivateRouter.load(directory, key.public), key  # what a device loads from a shared router


@pytest.fixture(scope="module")
def scorer() -> WhiteBoxScorer:
    return WhiteBoxScorer()


def _config(root: Path) -> Path:
    key = SigningKey.generate()
    key.save(root / "phone.key")
    key.public.save(root / "phone.key.pub")
    doc = {
        "version": 1, "policy": "eu-gdpr", "subject_jurisdiction": "DE",
        "identity": {"id": "phone", "key": "phone.key"},
        "endpoints": [
            {"id": "phone", "kind": "device", "jurisdiction": "DE", "box": "white"},
            {"id": "us-cloud", "kind": "cloud", "jurisdiction": "US", "attestations": ["dpa", "scc"],
             "url": "http://127.0.0.1:9/v1", "model": "m"},
        ],
        "audit": {"store": "sqlite:///audit.db"},
        "vault": {"path": ".state/vault.db", "key_file": ".state/vault.key"},
        "gate": {"timeouts": {"detect": 60.0}},
        "router": {"fallback": "reroute", "local": "phone"},
    }
    (root / "trustlayer.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return root / "trustlayer.yaml"


@pytest.mark.slow
def test_private_router_picks_within_policy_with_real_signals(trained: tuple[PrivateRouter, SigningKey],
                                                              scorer: WhiteBoxScorer, tmp_path: Path) -> None:
    router, _ = trained
    seen: dict[str, dict[str, float]] = {}

    def signals(prompt: str) -> dict[str, float]:
        # The local model answers greedily, so its signals for a prompt never change: score each once.
        if prompt not in seen:
            seen[prompt] = signals_from_score(scorer.answer(prompt, max_tokens=16)[1])
        return seen[prompt]

    function = RouterFunction(router, local_id="phone", cloud_ids=("us-cloud",), signals=signals)
    # The router alone, on the real model's signals, usually sends this hard medical question to the cloud;
    # its choice rests on DP noise and the model's signals, so the test follows whichever it makes.
    own = function(HEALTH)
    assert own in {"phone", "us-cloud"}
    config = _config(tmp_path)
    with TrustLayer.from_config(config) as tl:
        pick = route(function, layer=tl)
        with conversation("routing-1"):
            # It carries health data, which eu-gdpr keeps on the device: a cloud pick is rerouted and recorded.
            assert pick(HEALTH) == "phone"
        for prompt in ("what is 12 plus 7", "write a python function that parses invoice csv files"):
            chosen = pick(prompt)
            assert chosen in {"phone", "us-cloud"}
            assert chosen == function(prompt)  # clean prompts: the router's own choice stands
    ring = Keyring()
    ring.add(SigningKey.from_file(tmp_path / "phone.key").public, owner="phone")
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        report = verify_log(store, record_keys=ring, log_keys=ring)
    finally:
        store.close()
    assert report.ok, [p.message for p in report.problems]
    assert report.size == (1 if own == "us-cloud" else 0)  # a refused pick is recorded, an allowed one is not
