"""Signed provenance: Ed25519 keys, DSSE envelopes, in-toto hop records, agent authentication.

    >>> from trustlayer.provenance import Keyring, Record, RecordSigner, SigningKey
    >>> key = SigningKey.generate()
    >>> signer = RecordSigner(key, salt=bytes(32), state_path=None)
    >>> ring = Keyring(); ring.add(key.public, owner="phone")
    >>> # Record.from_envelope(signer.sign(hop).envelope, ring).predicate.sequence  -> 1

Modules: ``keys`` (SigningKey, VerifyKey, Keyring), ``dsse`` (envelopes), ``records``
(the in-toto Statement of a hop), ``signer`` (the Signer stage), ``sequence`` (per-key
sequence numbers), ``salt`` (the content salt), ``authenticator`` and ``replay`` (the
Authenticator stage), ``rotation`` (key rotation announcements), ``cli`` (``trustlayer keys``).
"""

from trustlayer.provenance.authenticator import RecordAuthenticator
from trustlayer.provenance.dsse import Verified, open_envelope, pae, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey
from trustlayer.provenance.records import HOP_PREDICATE, Record
from trustlayer.provenance.replay import ReplayGuard
from trustlayer.provenance.rotation import ROTATION_PREDICATE, announce_rotation, verify_rotation
from trustlayer.provenance.salt import load_salt
from trustlayer.provenance.signer import RecordSigner

__all__ = [
    "HOP_PREDICATE",
    "ROTATION_PREDICATE",
    "Keyring",
    "Record",
    "RecordAuthenticator",
    "RecordSigner",
    "ReplayGuard",
    "SigningKey",
    "Verified",
    "VerifyKey",
    "announce_rotation",
    "load_salt",
    "open_envelope",
    "pae",
    "sign_envelope",
    "verify_rotation",
]
