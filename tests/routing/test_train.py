"""DP-SGD training: the reported ε is the accountant's, and data DP cannot train on is refused."""

from __future__ import annotations

import warnings

import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from trustlayer.errors import RouterError
from trustlayer.provenance.keys import SigningKey
from trustlayer.routing.evaluate import evaluate_router
from trustlayer.routing.examples import RoutingExample
from trustlayer.routing.model import TrainConfig, UnsafeSeedWarning
from trustlayer.routing.router import PrivateRouter
from trustlayer.routing.simulate import simulated_routing_set
from trustlayer.routing.train import RDP_ALPHAS, train_router


def test_reported_epsilon_is_the_rdp_accountants(fast: TrainConfig, trained: PrivateRouter) -> None:
    p = trained.card.privacy
    accountant = RDPAccountant()
    accountant.history = [(p.noise_multiplier, p.sample_rate, p.steps)]
    assert accountant.get_epsilon(delta=p.delta, alphas=list(RDP_ALPHAS)) == p.epsilon
    # Opacus stops its noise search within 0.01 below the target.
    assert fast.epsilon - 0.02 <= p.epsilon <= fast.epsilon


def test_noise_multiplier_is_what_opacus_picks_for_the_target(fast: TrainConfig, trained: PrivateRouter) -> None:
    p = trained.card.privacy
    sigma = get_noise_multiplier(target_epsilon=fast.epsilon, target_delta=p.delta, sample_rate=p.sample_rate,
                                 epochs=p.epochs, accountant="rdp", alphas=list(RDP_ALPHAS))
    assert sigma == p.noise_multiplier
    assert p.steps == p.epochs * round(1 / p.sample_rate)


def test_card_states_data_size_clip_and_default_delta(fast: TrainConfig, trained: PrivateRouter,
                                                      train_set: list[RoutingExample]) -> None:
    p = trained.card.privacy
    assert p.n_examples == len(train_set)
    assert p.max_grad_norm == fast.max_grad_norm
    assert p.delta == 1 / (10 * len(train_set))
    assert p.seeded is True and p.secure_rng is False
    assert p.accountant == "rdp" and p.library.startswith("opacus ")


def test_private_router_learns_to_route(trained: PrivateRouter, held_out: list[RoutingExample]) -> None:
    report = evaluate_router(trained, held_out)
    majority = max(report.local_sufficed_rate, 1 - report.local_sufficed_rate)
    assert report.accuracy > majority + 0.1
    assert 0.0 < report.cloud_rate < 1.0


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_delta_at_or_above_one_over_n_is_refused(fast: TrainConfig, factor: float, train_set: list[RoutingExample],
                                                 trainer_key: SigningKey) -> None:
    delta = factor / len(train_set)
    config = fast.model_copy(update={"delta": delta})
    with pytest.raises(RouterError, match=r"delta .* must be below 1/N = .* for N = 600 examples"):
        train_router(train_set, config, key=trainer_key)


def test_delta_just_below_one_over_n_is_accepted(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = simulated_routing_set(200, seed=5)
    config = fast.model_copy(update={"delta": 0.99 / len(data), "epochs": 1, "unsafe_seed": None})
    assert train_router(data, config, key=trainer_key).card.privacy.delta == 0.99 / len(data)


def test_too_little_data_is_refused(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = simulated_routing_set(99, seed=3)
    with pytest.raises(RouterError, match=r"too little data .* 99 examples, at least 100"):
        train_router(data, fast, key=trainer_key)


def test_batch_larger_than_data_is_refused(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = simulated_routing_set(120, seed=3)
    with pytest.raises(RouterError, match="batch size 500 is larger than the 120 training examples"):
        train_router(data, fast.model_copy(update={"batch_size": 500}), key=trainer_key)


def test_one_label_only_is_refused(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = [ex.model_copy(update={"local_sufficed": True}) for ex in simulated_routing_set(150, seed=3)]
    with pytest.raises(RouterError, match="every one of the 150 examples has local_sufficed=true"):
        train_router(data, fast, key=trainer_key)


def test_examples_with_different_signals_are_refused(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = simulated_routing_set(150, seed=3)
    data[7] = RoutingExample(prompt=data[7].prompt, signals={"mean_logprob": -1.0}, local_sufficed=True)
    with pytest.raises(RouterError, match=r"example 8 has signals \(mean_logprob\) but example 1 has "
                                          r"\(mean_entropy, mean_logprob\)"):
        train_router(data, fast, key=trainer_key)


def test_same_seed_gives_the_same_weights(fast: TrainConfig, train_set: list[RoutingExample], trainer_key: SigningKey,
                                          trained: PrivateRouter, held_out: list[RoutingExample]) -> None:
    with pytest.warns(UnsafeSeedWarning):
        again = train_router(train_set, fast, key=trainer_key)
    features = [ex.features for ex in held_out[:50]]
    assert again.probabilities(features) == trained.probabilities(features)


def test_unseeded_runs_draw_fresh_noise(fast: TrainConfig, trainer_key: SigningKey) -> None:
    data = simulated_routing_set(200, seed=4)
    config = fast.model_copy(update={"unsafe_seed": None, "epochs": 1})
    a, b = (train_router(data, config, key=trainer_key) for _ in range(2))
    assert a.card.weights_sha256 != b.card.weights_sha256
    assert a.card.privacy.seeded is False


@pytest.mark.parametrize(("epsilon", "hidden"), [(0.5, 8), (50.0, 0)])
def test_training_emits_no_warnings(fast: TrainConfig, trainer_key: SigningKey, epsilon: float, hidden: int) -> None:
    # pytest turns warnings into errors anyway; this states the property on its own, at both ends
    # of the epsilon range where Opacus would warn about the RDP orders.
    data = simulated_routing_set(200, seed=6)
    config = fast.model_copy(update={"epochs": 1, "hidden": hidden, "epsilon": epsilon, "unsafe_seed": None})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        router = train_router(data, config, key=trainer_key)
    assert [str(w.message) for w in caught] == []
    assert router.card.privacy.epsilon <= epsilon
