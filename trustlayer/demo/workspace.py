"""The demo's workspace: three identities (a phone and two agents), their keys and configs.

Everything lives in one folder the user can inspect afterwards; the audit log is shared,
as a fleet's would be.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from trustlayer.provenance import SigningKey

__all__ = ["Workspace", "prepare"]

_MARKER = ".trustlayer-demo"


@dataclass(frozen=True)
class Workspace:
    """Paths of one prepared demo run."""

    root: Path
    audit_db: Path
    phone: Path
    planner: Path
    reviewer: Path
    public_keys: tuple[Path, ...]


def _key(root: Path, name: str) -> tuple[Path, str]:
    folder = root / "keys" / name
    folder.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    path = folder / f"{name}.key"
    key.save(path)
    key.public.save(folder / f"{name}.key.pub")
    return path, key.public.to_base64()


def _write(path: Path, data: dict[str, object]) -> Path:
    path.write_text("# written by 'trustlayer demo'\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def prepare(root: Path, cloud_url: str) -> Workspace:
    """Create (or re-create) the workspace: fresh keys, configs and an empty audit log."""
    if root.exists():
        if not (root / _MARKER).exists():
            raise FileExistsError(f"{root} exists and was not made by 'trustlayer demo'; choose another --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / _MARKER).write_text("made by trustlayer demo\n", encoding="utf-8")
    audit = root / "audit.db"
    phone_key, _ = _key(root, "phone")
    planner_key, planner_pub = _key(root, "planner")
    reviewer_key, reviewer_pub = _key(root, "reviewer")
    common = {
        "version": 1,
        "policy": "eu-gdpr",
        "subject_jurisdiction": "DE",
        "audit": {"store": f"sqlite:///{audit.name}", "checkpoint_every": 8},
        "gate": {"timeouts": {"detect": 60.0}},  # the first call loads the NER model
    }
    phone = _write(root / "phone.yaml", {
        **common,
        "identity": {"id": "phone", "key": str(phone_key.relative_to(root))},
        "endpoints": [
            {"id": "phone", "kind": "device", "jurisdiction": "DE", "box": "white"},
            {"id": "us-cloud", "kind": "cloud", "jurisdiction": "US", "region": "us-east-1",
             "attestations": ["dpa", "scc"], "url": cloud_url, "model": "smollm2", "timeout": 120.0},
        ],
        "vault": {"path": ".state/phone-vault.db", "key_file": ".state/phone-vault.key"},
        "router": {"fallback": "reroute", "local": "phone"},
    })
    agents = [
        {"id": "planner", "kind": "agent", "jurisdiction": "DE", "attestations": ["dpa"], "public_key": planner_pub},
        {"id": "reviewer", "kind": "agent", "jurisdiction": "FR", "attestations": ["dpa"],
         "public_key": reviewer_pub},
    ]
    planner = _write(root / "planner.yaml", {
        **common, "identity": {"id": "planner", "key": str(planner_key.relative_to(root))}, "endpoints": agents,
        "vault": {"path": ".state/planner-vault.db", "key_file": ".state/planner-vault.key"},
    })
    reviewer = _write(root / "reviewer.yaml", {
        **common, "identity": {"id": "reviewer", "key": str(reviewer_key.relative_to(root))}, "endpoints": agents,
        "vault": {"path": ".state/reviewer-vault.db", "key_file": ".state/reviewer-vault.key"},
    })
    pubs = tuple(p.with_name(p.name + ".pub") for p in (phone_key, planner_key, reviewer_key))
    return Workspace(root, audit, phone, planner, reviewer, pubs)
