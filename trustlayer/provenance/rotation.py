"""Key rotation: a new key is announced by a record signed with the old key.

    >>> from trustlayer.provenance.keys import Keyring, SigningKey
    >>> from trustlayer.provenance.rotation import announce_rotation
    >>> old, new = SigningKey.generate(), SigningKey.generate()
    >>> ring = Keyring(); ring.add(old.public, owner="agent-a")
    >>> envelope = announce_rotation(old, new)
    >>> ring.accept_rotation(envelope).key_id == new.key_id
    True
    >>> ring.owner_of(new.key_id)
    'agent-a'

The announcement is an in-toto Statement v1 whose subject is the new public key
(digest = the new key id) and whose predicate (``https://trustlayer.dev/key-rotation/v1``)
names the old and new key ids and the new public key. The envelope carries two DSSE
signatures: by the old key (authority: only a trusted key can introduce its successor)
and by the new key (proof of possession: nobody can announce a key they do not hold).
The new key inherits the old key's owner from the *keyring*, never from the payload.
The old key stays trusted, so records it signed earlier still verify.
"""

from __future__ import annotations

import base64
import hmac
import os
import time
from dataclasses import dataclass

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import open_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey

__all__ = ["ROTATION_PREDICATE", "Rotation", "announce_rotation", "verify_rotation"]

ROTATION_PREDICATE = "https://trustlayer.dev/key-rotation/v1"
"""The predicateType of a key rotation announcement."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """A verified rotation: the old (signing) key id, the new key, and the owner both speak for."""

    old_key_id: str
    new_key: VerifyKey
    owner: str | None
    time: int


def _now() -> int:
    return time.time_ns() // 1_000_000


def announce_rotation(old: SigningKey, new: SigningKey, *, reason: str = "scheduled") -> bytes:
    """The envelope bytes announcing ``new`` as the successor of ``old`` (signed by both)."""
    if old.key_id == new.key_id:
        raise SignatureError("a key cannot be rotated to itself")
    statement = {
        "_type": _json.STATEMENT_TYPE,
        "subject": [{"name": f"key:{new.key_id}", "digest": {"sha256": new.key_id}}],
        "predicateType": ROTATION_PREDICATE,
        "predicate": {
            "old_key_id": old.key_id,
            "new_key_id": new.key_id,
            "new_public_key": new.public.to_base64(),
            "reason": reason,
            "nonce": os.urandom(16).hex(),
            "time": _now(),
        },
    }
    return sign_envelope(_json.dumps(statement), _json.STATEMENT_MEDIA_TYPE, old, cosigners=(new,))


def verify_rotation(envelope: bytes, keyring: Keyring) -> Rotation:
    """Check a rotation announcement against ``keyring``; ``SignatureError`` naming what is wrong.

    Requires: a signature by a trusted key, the predicate type, the signer being the
    announced old key, the new key id matching the new public key, and a second
    signature by the new key.
    """
    verified = open_envelope(envelope, keyring, payload_type=_json.STATEMENT_MEDIA_TYPE)
    doc = _json.loads(verified.payload, "rotation statement")
    if doc.get("_type") != _json.STATEMENT_TYPE or doc.get("predicateType") != ROTATION_PREDICATE:
        raise SignatureError(f"not a key rotation record (predicateType {doc.get('predicateType')!r})")
    pred = doc.get("predicate")
    if not isinstance(pred, dict):
        raise SignatureError("rotation record: predicate must be an object")
    for field in ("old_key_id", "new_key_id", "new_public_key"):
        if not isinstance(pred.get(field), str):
            raise SignatureError(f"rotation record: predicate.{field} must be a string")
    if not isinstance(pred.get("time"), int) or isinstance(pred.get("time"), bool):
        raise SignatureError("rotation record: predicate.time must be an integer (Unix milliseconds)")
    if not hmac.compare_digest(pred["old_key_id"], verified.key_id):
        raise SignatureError(f"rotation record names old key {pred['old_key_id'][:16]} but is signed by "
                             f"{verified.key_id[:16]}")
    try:
        new_key = VerifyKey.from_raw(base64.b64decode(pred["new_public_key"], validate=True))
    except ValueError as exc:
        raise SignatureError("rotation record: new_public_key is not valid base64") from exc
    if new_key.key_id != pred["new_key_id"]:
        raise SignatureError(f"rotation record: new_key_id {pred['new_key_id'][:16]} does not match the key "
                             f"id of new_public_key ({new_key.key_id[:16]})")
    if new_key.key_id == verified.key_id:
        raise SignatureError("rotation record rotates a key to itself")
    if not verified.envelope.signed_by(new_key):
        raise SignatureError(f"rotation record lacks a valid signature by the new key {new_key.key_id[:16]} "
                             "(proof of possession)")
    return Rotation(verified.key_id, new_key, verified.owner, pred["time"])
