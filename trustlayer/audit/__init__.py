"""trustlayer.audit: the tamper-evident audit log (RFC 9162 Merkle tree over signed envelopes).

    from trustlayer.audit.store import open_store
    from trustlayer.audit.verify import verify_log

    with open_store("sqlite:///.trustlayer/audit.db", log_key=key, keyring=ring) as log:
        index = log.record(signed.envelope)            # the gate's Recorder stage

Modules, one job each:

- ``merkle``: RFC 9162 tree hashes, inclusion and consistency proofs (generation, verification)
- ``checkpoint``: signed tree heads (size, root, time) in DSSE envelopes, signed by the log key
- ``store``: the ``AuditStore`` interface, its value types and ``open_store(url)``
- ``sqlite_store`` / ``postgres_store``: the embedded store and the fleet store (``_sql`` is their shared core,
  ``_writer`` the group-commit writer thread)
- ``record_view``: what the log reads from a verified hop record
- ``verify``: full verification of a stored log (``trustlayer audit verify``); ``_parallel`` spreads
  signature checks over processes
- ``trust``: how a reviewer learns which keys to trust (``--config``, ``--trust``, trust on first use)
- ``from_config``: the store a ``trustlayer.yaml`` describes
- ``cli``: ``trustlayer audit verify|show|tail|search|prove|consistency|export|checkpoint|graph|reputation``

Submodules are imported explicitly, so that ``import trustlayer.audit`` stays cheap.
"""
