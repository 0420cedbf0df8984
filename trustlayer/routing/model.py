"""The router network and its training settings.

    >>> from trustlayer.routing.model import TrainConfig, build_model
    >>> cfg = TrainConfig(epsilon=3.0, hidden=0)
    >>> build_model(10, cfg.hidden)
    Sequential(
      (0): Linear(in_features=10, out_features=1, bias=True)
    )

The network outputs one logit: P(the local model suffices) after a sigmoid. With
``hidden=0`` it is logistic regression; otherwise a one-hidden-layer MLP. Both use
only layers Opacus computes per-sample gradients for (``nn.Linear``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrainConfig", "UnsafeSeedWarning", "architecture_of", "build_model"]


class UnsafeSeedWarning(UserWarning):
    """Training ran with ``unsafe_seed``: its noise can be replayed by whoever knows the seed."""


class TrainConfig(BaseModel):
    """Settings for DP-SGD training of a router.

    ``epsilon`` and ``delta`` are the target (ε, δ); ``delta`` defaults to ``1 / (10 N)``
    and must be below ``1 / N``. ``unsafe_seed`` makes training reproducible (initial
    weights, Poisson sampling *and* noise): for experiments only, since anyone who knows the
    seed can replay the noise and the sampling. It warns each time it is used
    (``UnsafeSeedWarning``) and the card records it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epsilon: float = Field(gt=0, le=100)
    delta: float | None = Field(default=None, gt=0, lt=1)
    epochs: int = Field(default=20, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=2.0, gt=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    hidden: int = Field(default=0, ge=0, le=4096)
    n_features: int = Field(default=1024, ge=8, le=1 << 20)
    ngram_max: int = Field(default=2, ge=1, le=4)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_examples: int = Field(default=100, ge=2)
    unsafe_seed: int | None = None


def architecture_of(hidden: int) -> Literal["logistic", "mlp"]:
    """The card's name for the network shape."""
    return "logistic" if hidden == 0 else "mlp"


def build_model(input_dim: int, hidden: int) -> torch.nn.Sequential:
    """A fresh router network for ``input_dim`` features (one logit out)."""
    if hidden == 0:
        return torch.nn.Sequential(torch.nn.Linear(input_dim, 1))
    return torch.nn.Sequential(torch.nn.Linear(input_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
