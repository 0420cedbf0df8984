"""Train a router with DP-SGD (Opacus) to a target (ε, δ) and sign its model card.

    >>> from trustlayer.routing.train import train_router               # doctest: +SKIP
    >>> router = train_router(examples, TrainConfig(epsilon=3.0), key=key)  # doctest: +SKIP
    >>> router.card.privacy.epsilon <= 3.0                               # doctest: +SKIP
    True

Opacus picks the noise multiplier that reaches ``epsilon`` after ``epochs`` passes
(``PrivacyEngine.make_private_with_epsilon``), training clips each example's
gradient to ``max_grad_norm`` and adds Gaussian noise (Abadi et al. 2016, DP-SGD),
and the card reports the accountant's final ε for the δ used, not the target.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import opacus
import torch
from opacus import PrivacyEngine
from torch.utils.data import DataLoader, TensorDataset

from trustlayer.errors import RouterError
from trustlayer.provenance.keys import SigningKey
from trustlayer.routing.card import ModelCard, PrivacyReport, card_bytes, sign_card
from trustlayer.routing.examples import RoutingExample
from trustlayer.routing.features import FeatureSpec, vectorize_many
from trustlayer.routing.model import TrainConfig, UnsafeSeedWarning, architecture_of, build_model
from trustlayer.routing.router import PrivateRouter

__all__ = ["RDP_ALPHAS", "Progress", "check_training_data", "examples_to_tensors", "train_router"]

RDP_ALPHAS: tuple[float, ...] = (
    (1.001, 1.01, 1.05) + tuple(1 + x / 10.0 for x in range(1, 100)) + tuple(float(a) for a in range(12, 64))
    + (80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 768.0, 1024.0, 2048.0, 4096.0)
)
"""RDP orders for the accountant: Opacus' defaults extended at both ends.

The noise search starts at σ = 20, where the best order exceeds Opacus' default maximum of
63, and a large ε (tens) with little noise puts the best order below its minimum of 1.1;
Opacus then warns "Optimal order is the largest/smallest alpha". The longer range keeps the
bound tight there and removes the cause of those warnings instead of hiding them.
"""

Progress = Callable[[int, int], None]
"""Called after each optimizer step with ``(steps_done, steps_total)``."""


def check_training_data(examples: Sequence[RoutingExample], config: TrainConfig) -> tuple[float, tuple[str, ...]]:
    """Refuse data DP-SGD cannot train on; return the δ to use and the signal names.

    Raises ``RouterError`` when there are fewer than ``min_examples`` examples, fewer than
    ``batch_size``, only one label, examples with different signals, or δ >= 1/N.
    """
    n = len(examples)
    if n < config.min_examples:
        raise RouterError(f"too little data to train a private router: {n} examples, at least "
                          f"{config.min_examples} are needed (min_examples) for DP-SGD's noise to leave "
                          "a useful model")
    if config.batch_size > n:
        raise RouterError(f"batch size {config.batch_size} is larger than the {n} training examples")
    labels = {ex.local_sufficed for ex in examples}
    if len(labels) < 2:
        only = "local_sufficed=true" if True in labels else "local_sufficed=false"
        raise RouterError(f"every one of the {n} examples has {only}; a router needs both outcomes to learn from")
    delta = config.delta if config.delta is not None else 1.0 / (10 * n)
    # δ is the probability that the ε bound fails; at δ >= 1/N a mechanism that publishes one
    # whole example at random satisfies the bound (Dwork & Roth 2014, section 2.3).
    if delta >= 1.0 / n:
        raise RouterError(f"delta {delta:g} must be below 1/N = {1.0 / n:g} for N = {n} examples; "
                          f"choose --delta below {1.0 / n:g} (for example {1.0 / (10 * n):.2g})")
    names = tuple(sorted(examples[0].signals))
    for i, ex in enumerate(examples):
        if tuple(sorted(ex.signals)) != names:
            raise RouterError(f"example {i + 1} has signals ({', '.join(sorted(ex.signals)) or 'none'}) but "
                              f"example 1 has ({', '.join(names) or 'none'}); every example needs the same "
                              "uncertainty signals")
    return delta, names


def examples_to_tensors(examples: Sequence[RoutingExample], spec: FeatureSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature matrix ``(N, spec.dim)`` and label column ``(N, 1)`` (1.0 = the local model sufficed)."""
    x = torch.tensor(vectorize_many([ex.features for ex in examples], spec), dtype=torch.float32)
    y = torch.tensor([[1.0 if ex.local_sufficed else 0.0] for ex in examples], dtype=torch.float32)
    return x, y


def _generator(seed: int | None) -> torch.Generator:
    # Without a seed the sampling and the noise start from the OS CSPRNG, so nobody can
    # replay them; torch's generator itself is not cryptographic (see PrivacyReport.secure_rng).
    return torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)


def _private_engine() -> PrivacyEngine:
    with warnings.catch_warnings():
        # Opacus warns on every engine without secure_mode. secure_mode needs torchcsprng, which
        # has no build for torch 2.13; the card records secure_rng=false instead of hiding it.
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        return PrivacyEngine(accountant="rdp")


def train_router(examples: Sequence[RoutingExample], config: TrainConfig, *, key: SigningKey,
                 progress: Progress | None = None) -> PrivateRouter:
    """Train a router with DP-SGD to ``config``'s (ε, δ); sign its card with ``key``.

    Raises ``RouterError`` for data that cannot be trained on privately (see
    ``check_training_data``) and when Opacus cannot reach the budget.
    """
    delta, signal_names = check_training_data(examples, config)
    seed = config.unsafe_seed
    if seed is not None:
        warnings.warn(f"training with unsafe_seed={seed}: the DP noise and sampling are reproducible, so the "
                      "(epsilon, delta) guarantee does not hold against anyone who knows the seed; "
                      "use for experiments only", UnsafeSeedWarning, stacklevel=2)
    spec = FeatureSpec(n_features=config.n_features, ngram_max=config.ngram_max, signal_names=signal_names)
    x, y = examples_to_tensors(examples, spec)
    sampling, noise = _generator(seed), _generator(None if seed is None else seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(secrets.randbits(63) if seed is None else seed)
        model = build_model(spec.dim, config.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, generator=sampling)
    engine = _private_engine()
    try:
        dp_model, dp_optimizer, dp_loader = engine.make_private_with_epsilon(
            module=model, optimizer=optimizer, data_loader=loader, target_epsilon=config.epsilon,
            target_delta=delta, epochs=config.epochs, max_grad_norm=config.max_grad_norm,
            alphas=list(RDP_ALPHAS), noise_generator=noise, poisson_sampling=True, grad_sample_mode="hooks",
        )
    except ValueError as exc:  # opacus: "The privacy budget is too low."
        raise RouterError(f"Opacus cannot reach epsilon {config.epsilon:g} at delta {delta:g} with "
                          f"{config.epochs} epochs: {exc}") from exc
    loss_fn = torch.nn.BCEWithLogitsLoss()
    total = config.epochs * len(dp_loader)
    done = 0
    dp_model.train()
    for _ in range(config.epochs):
        for xb, yb in dp_loader:
            # The first Linear's backward hook (Opacus' per-sample gradients) fires on the
            # gradient w.r.t. its input; asking for that gradient makes torch fire it there,
            # as Opacus expects, instead of warning that it fell back to the output.
            xb.requires_grad_(True)
            dp_optimizer.zero_grad()
            loss_fn(dp_model(xb), yb).backward()
            dp_optimizer.step()
            done += 1
            if progress is not None:
                progress(done, total)
    epsilon = engine.accountant.get_epsilon(delta=delta, alphas=list(RDP_ALPHAS))
    steps = sum(n_steps for _, _, n_steps in engine.accountant.history)
    sample_rate = float(engine.accountant.history[-1][1])
    trained = build_model(spec.dim, config.hidden)
    trained.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
    trained.eval()
    if not all(torch.isfinite(p).all() for p in trained.parameters()):
        raise RouterError("DP-SGD produced non-finite weights; lower --learning-rate or raise --max-grad-norm")
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    weights = buffer.getvalue()
    card = ModelCard(
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        trainer_key_id=key.key_id,
        architecture=architecture_of(config.hidden),
        hidden=config.hidden,
        features=spec,
        threshold=config.threshold,
        learning_rate=config.learning_rate,
        privacy=PrivacyReport(
            library=f"opacus {opacus.__version__}",
            accountant="rdp",
            epsilon=float(epsilon),
            delta=delta,
            target_epsilon=config.epsilon,
            noise_multiplier=float(dp_optimizer.noise_multiplier),
            max_grad_norm=config.max_grad_norm,
            sample_rate=sample_rate,
            steps=steps,
            epochs=config.epochs,
            expected_batch_size=int(dp_optimizer.expected_batch_size),
            n_examples=len(examples),
            seeded=seed is not None,
        ),
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        torch_version=torch.__version__,
    )
    payload = card_bytes(card)
    return PrivateRouter(trained, card, payload=payload, envelope=sign_card(payload, key), weights=weights)
