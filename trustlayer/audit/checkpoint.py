"""Checkpoints: signed tree heads of the audit log (RFC 9162 4.10, in a DSSE envelope).

    >>> from trustlayer.audit.checkpoint import open_checkpoint, sign_checkpoint
    >>> from trustlayer.audit.merkle import EMPTY_ROOT
    >>> from trustlayer.provenance.keys import Keyring, SigningKey
    >>> key = SigningKey.generate()
    >>> cp = sign_checkpoint("log-1", 0, EMPTY_ROOT, key, time=1700000000)
    >>> ring = Keyring(); ring.add(key.public)
    >>> open_checkpoint(cp.envelope, ring).size
    0

The payload is canonical JSON (sorted keys, no whitespace, integers only) naming the
log (``origin``), the tree size, the root hash (hex) and the signing time in whole
seconds. The log key signs it; ``open_checkpoint`` verifies before it parses.
"""

from __future__ import annotations

import json
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustlayer.audit.merkle import HASH_SIZE
from trustlayer.errors import AuditError, SignatureError
from trustlayer.provenance.dsse import open_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = ["CHECKPOINT_TYPE", "Checkpoint", "load_checkpoint_file", "open_checkpoint", "sign_checkpoint"]

CHECKPOINT_TYPE = "application/vnd.trustlayer.checkpoint+json"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified signed tree head: ``size`` leaves of log ``origin`` have root ``root``."""

    origin: str
    size: int
    root: bytes
    time: int
    key_id: str
    envelope: bytes

    def describe(self) -> str:
        """One line for humans: size, root prefix and signer."""
        return f"size {self.size}, root {self.root.hex()[:16]}..., signed by {self.key_id[:16]}"


def _payload(origin: str, size: int, root: bytes, when: int) -> bytes:
    doc = {"origin": origin, "root": root.hex(), "size": size, "time": when}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def sign_checkpoint(origin: str, size: int, root: bytes, key: SigningKey, *, time: int | None = None) -> Checkpoint:
    """Sign the tree head (``origin``, ``size``, ``root``) with the log key."""
    if size < 0 or len(root) != HASH_SIZE:
        raise AuditError(f"cannot sign a checkpoint of size {size} with a {len(root)}-byte root")
    when = int(_time.time()) if time is None else time
    envelope = sign_envelope(_payload(origin, size, root, when), CHECKPOINT_TYPE, key)
    return Checkpoint(origin, size, root, when, key.key_id, envelope)


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    # bool is an int subclass; a checkpoint never holds one.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SignatureError(f"checkpoint payload field {name!r} must be {kind.__name__}, "
                             f"found {type(value).__name__}")
    return value


def open_checkpoint(envelope: bytes, keyring: Keyring) -> Checkpoint:
    """Verify a checkpoint envelope with the trusted log keys, then parse it.

    Raises ``SignatureError`` (unknown key, bad signature, malformed payload).
    """
    verified = open_envelope(envelope, keyring, payload_type=CHECKPOINT_TYPE)
    try:
        doc = json.loads(verified.payload)
    except ValueError as exc:
        raise SignatureError("checkpoint payload is not valid JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"origin", "root", "size", "time"}:
        raise SignatureError("checkpoint payload must hold exactly origin, root, size and time")
    size = _field(doc, "size", int)
    root_hex = _field(doc, "root", str)
    try:
        root = bytes.fromhex(root_hex)
    except ValueError as exc:
        raise SignatureError("checkpoint root is not hex") from exc
    if size < 0 or len(root) != HASH_SIZE:
        raise SignatureError(f"checkpoint has size {size} and a {len(root)}-byte root")
    return Checkpoint(_field(doc, "origin", str), size, root, _field(doc, "time", int),
                      verified.key_id, bytes(envelope))


def load_checkpoint_file(path: str | Path) -> bytes:
    """Read a saved checkpoint envelope (as written by ``trustlayer audit checkpoint --out``)."""
    p = Path(path)
    try:
        data = p.read_bytes().strip()
    except OSError as exc:
        raise AuditError(f"cannot read checkpoint file {str(p)!r}: {exc.strerror}") from exc
    if not data.startswith(b"{"):
        raise AuditError(f"checkpoint file {str(p)!r} does not hold a checkpoint envelope (JSON)")
    return data
