"""DSSE v1 envelopes (Dead Simple Signing Envelope), signed with Ed25519.

    >>> from trustlayer.provenance.dsse import open_envelope, sign_envelope
    >>> from trustlayer.provenance.keys import Keyring, SigningKey
    >>> key = SigningKey.generate()
    >>> env = sign_envelope(b'{"a":1}', "application/vnd.in-toto+json", key)
    >>> ring = Keyring(); ring.add(key.public, owner="me")
    >>> open_envelope(env, ring).payload
    b'{"a":1}'

The protocol follows https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md
v1.0.0): the signature covers ``PAE(UTF8(payloadType), payload)``, never the JSON around it,
and the payload is parsed only after a signature verified.

**Byte-canonical envelopes.** trustlayer stores and hashes the exact envelope bytes: a
record's id is the SHA-256 of those bytes. If two byte strings could carry one signed
record (extra fields, whitespace, URL-safe base64, non-zero base64 padding bits, an
edited ``keyid`` hint), the same record could appear under two ids. So ``open_envelope``
by default accepts only the canonical form that ``sign_envelope`` writes; pass
``strict=False`` to read DSSE envelopes from other producers (then the spec's parsing
rules apply: either base64 alphabet, unknown fields ignored).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustlayer.errors import SignatureError
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "Envelope",
    "EnvelopeSigner",
    "Verified",
    "open_envelope",
    "pae",
    "parse_envelope",
    "sign_envelope",
]

MAX_ENVELOPE_BYTES = 1 << 20
"""Envelopes larger than this are rejected before parsing (records are a few hundred bytes)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 Pre-Authentication Encoding of a payload and its type.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, LEN in ASCII decimal (protocol.md).
    """
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _serialize(payload: bytes, payload_type: str, signatures: Sequence[tuple[str, bytes]]) -> bytes:
    """The canonical form: fixed key order, no whitespace, standard base64 with padding.

    Byte-for-byte what ``json.dumps(doc, separators=(",", ":"), ensure_ascii=True)`` writes
    for ``{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}`` (a test holds it to
    that), assembled directly because it runs for every record signed and read.
    """
    sigs = b",".join(
        b'{"keyid":' + json.dumps(kid, ensure_ascii=True).encode("ascii")
        + b',"sig":"' + base64.b64encode(sig) + b'"}'
        for kid, sig in signatures
    )
    return (b'{"payload":"' + base64.b64encode(payload) + b'","payloadType":'
            + json.dumps(payload_type, ensure_ascii=True).encode("ascii") + b',"signatures":[' + sigs + b"]}")


def sign_envelope(payload: bytes, payload_type: str, key: SigningKey, *,
                  cosigners: Sequence[SigningKey] = ()) -> bytes:
    """Sign ``payload`` and return the exact envelope JSON bytes to store and send.

    ``cosigners`` add further signatures over the same PAE (DSSE multi-signature), e.g. a
    rotation record signed by the old and the new key.
    """
    if not payload_type:
        raise SignatureError("a DSSE payloadType must not be empty")
    message = pae(payload_type, payload)
    signatures = [(k.key_id, k.sign(message)) for k in (key, *cosigners)]
    return _serialize(payload, payload_type, signatures)


class EnvelopeSigner:
    """``sign_envelope`` for one key and payload type, with the constant bytes prepared once.

    ``EnvelopeSigner(key, t).sign(p) == sign_envelope(p, t, key)`` byte for byte (a test
    holds it to that); it exists because the record signer runs for every hop, and the
    PAE prefix and the envelope text around the payload and signature never change.
    """

    __slots__ = ("_head", "_key", "_pae_prefix", "_sign")

    def __init__(self, key: SigningKey, payload_type: str) -> None:
        if not payload_type:
            raise SignatureError("a DSSE payloadType must not be empty")
        t = payload_type.encode("utf-8")
        self._key = key
        self._sign = key.sign
        self._pae_prefix = b"DSSEv1 %d %b " % (len(t), t)
        # everything between the payload's base64 and the signature's base64 in _serialize
        self._head = (b'","payloadType":' + json.dumps(payload_type, ensure_ascii=True).encode("ascii")
                      + b',"signatures":[{"keyid":' + json.dumps(key.key_id, ensure_ascii=True).encode("ascii")
                      + b',"sig":"')

    @property
    def key(self) -> SigningKey:
        """The signing key."""
        return self._key

    def sign(self, payload: bytes) -> bytes:
        """Sign ``PAE(type, payload)`` and return the canonical envelope bytes."""
        signature = self._sign(b"%b%d %b" % (self._pae_prefix, len(payload), payload))
        # one join: each `+` copied the whole envelope so far (~1.2 KB for a hop record)
        return b"".join((b'{"payload":"', binascii.b2a_base64(payload, newline=False), self._head,
                         binascii.b2a_base64(signature, newline=False), b'"}]}'))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded, *unverified* envelope. Use ``open_envelope`` unless you verify by hand."""

    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, bytes], ...]

    def signed_by(self, key: VerifyKey) -> bool:
        """True when one of the signatures verifies with ``key`` (keyid hints are not trusted)."""
        message = pae(self.payload_type, self.payload)
        return any(key.is_valid(sig, message) for _, sig in self.signatures)


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified envelope establishes: the payload, its type and who signed it."""

    payload: bytes
    payload_type: str
    key_id: str
    owner: str | None
    envelope: Envelope


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SignatureError(f"bad envelope: field {k!r} appears twice")
        out[k] = v
    return out


def _decode_b64(text: Any, field: str, *, strict: bool) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"bad envelope: {field} must be a base64 string, found {type(text).__name__}")
    s = text if strict else text.replace("-", "+").replace("_", "/")
    if not strict:
        s += "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"bad envelope: {field} is not valid base64") from exc
    # RFC 4648 3.5: canonical encoders set the pad bits to zero; only the canonical text is accepted.
    if strict and _b64(raw) != text:
        raise SignatureError(f"bad envelope: {field} is not in canonical standard base64")
    return raw


def parse_envelope(envelope: bytes, *, strict: bool = True) -> Envelope:
    """Decode the envelope JSON (never the payload); ``SignatureError`` saying what is malformed."""
    if not isinstance(envelope, bytes | bytearray | memoryview):
        raise SignatureError(f"bad envelope: expected bytes, found {type(envelope).__name__}")
    envelope = bytes(envelope)
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise SignatureError(f"bad envelope: {len(envelope)} bytes exceeds the limit of {MAX_ENVELOPE_BYTES}")
    try:
        doc = json.loads(envelope, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # SignatureError from the hook passes through
        raise SignatureError("bad envelope: not valid JSON") from exc
    if not isinstance(doc, dict):
        raise SignatureError(f"bad envelope: expected a JSON object, found {type(doc).__name__}")
    for field in ("payload", "payloadType", "signatures"):
        if field not in doc:
            raise SignatureError(f"bad envelope: required field {field!r} is missing")
    payload_type = doc["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise SignatureError("bad envelope: payloadType must be a non-empty string")
    payload = _decode_b64(doc["payload"], "payload", strict=strict)
    sigs = doc["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("bad envelope: signatures must be a non-empty list")
    signatures: list[tuple[str, bytes]] = []
    for i, entry in enumerate(sigs):
        if not isinstance(entry, dict) or "sig" not in entry:
            raise SignatureError(f"bad envelope: signatures[{i}] must be an object with a 'sig' field")
        keyid = entry.get("keyid", "")  # envelope.md: unset keyid is the same as empty
        if not isinstance(keyid, str):
            raise SignatureError(f"bad envelope: signatures[{i}].keyid must be a string")
        signatures.append((keyid, _decode_b64(entry["sig"], f"signatures[{i}].sig", strict=strict)))
    parsed = Envelope(payload, payload_type, tuple(signatures))
    if strict and _serialize(payload, payload_type, signatures) != envelope:
        raise SignatureError("bad envelope: not in trustlayer's canonical form (extra fields, whitespace "
                             "or field order differ from what was signed and stored)")
    return parsed


def open_envelope(envelope: bytes, keyring: Keyring, *, payload_type: str | None = None,
                  strict: bool = True) -> Verified:
    """Verify ``envelope`` against the trusted keys, then return its payload (still unparsed).

    The keyid hint only narrows which trusted keys are tried (protocol.md: it must not decide
    anything); acceptance needs a signature that verifies with a key in ``keyring``.
    ``payload_type``, when given, must match. Raises ``SignatureError`` with the reason:
    bad envelope, unknown key, bad signature, or unexpected payload type.
    """
    env = parse_envelope(envelope, strict=strict)
    message = pae(env.payload_type, env.payload)
    known = False
    for keyid, sig in env.signatures:
        candidates: list[VerifyKey]
        if keyid:
            if keyid not in keyring:
                continue
            candidates = [keyring.get(keyid)]
        else:
            candidates = list(keyring)
        known = known or bool(candidates)
        for key in candidates:
            if key.is_valid(sig, message):
                # DSSE protocol.md: reject an unsupported type only after the signature verified.
                if payload_type is not None and env.payload_type != payload_type:
                    raise SignatureError(f"unexpected payload type {env.payload_type!r}, expected {payload_type!r}")
                return Verified(env.payload, env.payload_type, key.key_id, keyring.owner_of(key.key_id), env)
    hints = ", ".join(k[:16] for k, _ in env.signatures if k) or "(no keyid)"
    if not known:
        raise SignatureError(f"unknown key: no signature is by a trusted key (signed by {hints})")
    raise SignatureError(f"bad signature: the signature by {hints} does not verify over the payload")
