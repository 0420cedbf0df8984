"""Loading the local llama.cpp model for the verifiers, with errors translated to ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustlayer.errors import ConfigError

__all__ = ["load_llama"]


def load_llama(model_path: str | Path | None, *, n_ctx: int, n_threads: int, **params: Any) -> Any:
    """A ``llama_cpp.Llama`` for ``model_path`` (default: the SmolLM2 GGUF), quiet, with our errors.

    Raises ``ConfigError`` naming the missing package or the unreadable model file.
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError("the white-box verifiers need llama-cpp-python; "
                          "install it with: pip install 'trustlayer[local]'") from exc
    if model_path is None:
        from trustlayer.endpoints.models import default_model_path

        model_path = default_model_path()
    path = Path(model_path)
    if not path.is_file():
        raise ConfigError(f"local model file {str(path)!r} does not exist", path=str(path))
    if params.get("embedding"):
        # A decoder-only model has no pooling of its own; mean pooling gives one vector per text.
        params.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False,
                               **params)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"local model file {str(path)!r} could not be loaded: {exc}",
                          path=str(path)) from exc
