"""The policy files shipped with trustlayer (``policies/*.yaml``, installed as ``trustlayer/_policies``).

>>> from trustlayer.policy import shipped_policy_path
>>> shipped_policy_path("eu-gdpr").name
'eu-gdpr.yaml'
"""

from __future__ import annotations

from pathlib import Path

from trustlayer.errors import PolicyError

__all__ = ["SHIPPED_DIR", "shipped_policy_names", "shipped_policy_path"]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "_policies"


def shipped_policy_names() -> tuple[str, ...]:
    """The names of the shipped policies, sorted (``default``, ``eu-gdpr``, ...)."""
    return tuple(sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")))


def shipped_policy_path(name: str) -> Path:
    """The file of the shipped policy ``name``; ``PolicyError`` listing the shipped names if unknown."""
    names = shipped_policy_names()
    if name not in names:
        raise PolicyError(f"there is no shipped policy named {name!r} (shipped: {', '.join(names) or 'none'})",
                          field="policy")
    return SHIPPED_DIR / f"{name}.yaml"
