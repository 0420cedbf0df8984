"""Shared fixtures for the router tests: a key, a simulated labelled set, one trained router."""

from __future__ import annotations

import pytest

from trustlayer.provenance.keys import SigningKey
from trustlayer.routing.examples import RoutingExample
from trustlayer.routing.model import TrainConfig, UnsafeSeedWarning
from trustlayer.routing.router import PrivateRouter
from trustlayer.routing.simulate import simulated_routing_set
from trustlayer.routing.train import train_router

# Small enough to train in about a second on one core, large enough to learn from. Seeded so
# the tests that depend on what the router learnt are deterministic.
FAST = TrainConfig(epsilon=3.0, epochs=4, batch_size=32, n_features=256, unsafe_seed=11)


@pytest.fixture(scope="session")
def trainer_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def train_set() -> list[RoutingExample]:
    return simulated_routing_set(600, seed=1)


@pytest.fixture(scope="session")
def held_out() -> list[RoutingExample]:
    return simulated_routing_set(400, seed=2)


@pytest.fixture(scope="session")
def trained(train_set: list[RoutingExample], trainer_key: SigningKey) -> PrivateRouter:
    with pytest.warns(UnsafeSeedWarning, match="unsafe_seed=11: the DP noise and sampling are reproducible"):
        return train_router(train_set, FAST, key=trainer_key)


@pytest.fixture(scope="session")
def fast() -> TrainConfig:
    return FAST
