"""Full verification of a stored audit log: what ``trustlayer audit verify`` runs.

    >>> from trustlayer.audit.verify import verify_log
    >>> report = verify_log(store, record_keys=ring, log_keys=ring)   # doctest: +SKIP
    >>> report.ok, [p.message for p in report.problems]              # doctest: +SKIP

Only the envelope bytes and the signed checkpoints are trusted, and only after their
signatures verify with keys the caller trusts. The checks:

1. indices are contiguous from 0 (a hole is a deleted entry);
2. each envelope verifies with a trusted key (else: modified, or an untrusted signer);
3. per signing key, sequence numbers are unique (a repeat is a replayed record) and
   without holes; they may arrive out of order, because concurrent writers sign before
   they append. A hole where no matching checkpoint vouches for the entries fails (a
   deleted record); inside the vouched prefix it is a warning (the signer skipped
   numbers, e.g. after a crash: ``trustlayer.provenance.sequence`` reserves blocks);
4. the RFC 9162 tree recomputed from the envelopes matches the root of every checkpoint
   (catches reordering, insertion and deletion even by a trusted signer), no checkpoint
   claims more entries than the log holds (truncation), successive checkpoints are
   consistent (RFC 9162 2.1.4), and no two checkpoints of one size differ (a fork),
   including checkpoints saved outside the log (``saved``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from trustlayer.audit._parallel import check_batches
from trustlayer.audit.checkpoint import Checkpoint, open_checkpoint
from trustlayer.audit.merkle import MerkleTree, ProofError, leaf_hash, verify_consistency
from trustlayer.audit.store import AuditStore, Entry, StoredCheckpoint
from trustlayer.errors import SignatureError
from trustlayer.provenance.keys import Keyring

__all__ = ["PARALLEL_FROM", "Problem", "VerifyReport", "verify_log"]

_BATCH = 2000
PARALLEL_FROM = 20_000
"""Logs with at least this many entries are checked by one worker process per CPU (``workers=None``)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: ``kind`` (a short tag), a sentence, and the entry index when one is to blame."""

    kind: str
    message: str
    index: int | None = None


@dataclass
class VerifyReport:
    """The outcome of ``verify_log``: ``ok`` when there are no problems (warnings are advice)."""

    size: int = 0
    root: bytes = b""
    checkpoints: int = 0
    latest: Checkpoint | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def add(self, kind: str, message: str, index: int | None = None) -> None:
        """Record a problem."""
        self.problems.append(Problem(kind, message, index))


@dataclass
class _Seq:
    first_at: dict[int, int] = field(default_factory=dict)  # sequence -> entry index


@dataclass
class _Scan:
    sequences: dict[str, _Seq] = field(default_factory=dict)
    order: dict[int, tuple[str, int]] = field(default_factory=dict)  # entry index -> (key id, sequence)


def _signature_problem(report: VerifyReport, index: int, reason: str) -> None:
    if reason.startswith("unknown key"):
        report.add("untrusted-key", f"entry {index}: signed by a key that is not trusted ({reason})", index)
    else:
        report.add("bad-signature", f"entry {index}: envelope does not verify, it was modified or forged "
                                    f"({reason})", index)


def _batches(store: AuditStore, size: int, sink: list[list[Entry]]) -> Iterator[list[bytes]]:
    """Envelopes in batches; the entries themselves are kept in ``sink`` for the caller."""
    batch: list[Entry] = []
    for entry in store.entries(batch=size):
        batch.append(entry)
        if len(batch) == size:
            sink.append(batch)
            yield [e.envelope for e in batch]
            batch = []
    if batch:
        sink.append(batch)
        yield [e.envelope for e in batch]


def _scan_entries(store: AuditStore, record_keys: Keyring, report: VerifyReport, tree: MerkleTree,
                  progress: Callable[[int], None] | None, workers: int) -> _Scan:
    scan = _Scan()
    expected = 0
    read: list[list[Entry]] = []
    for outcomes in check_batches(_batches(store, _BATCH, read), record_keys, workers=workers):
        for entry, outcome in zip(read.pop(0), outcomes, strict=True):
            if entry.index != expected:
                report.add("deleted", f"entries {expected}..{entry.index - 1} are missing: the stored indices "
                                      f"jump from {expected - 1} to {entry.index} (deleted)", expected)
            expected = entry.index + 1
            leaf = leaf_hash(entry.envelope)
            tree.append(leaf)
            if leaf != entry.leaf_hash:
                report.add("modified", f"entry {entry.index}: the envelope does not match the leaf hash written "
                                       "with it (modified after it was appended)", entry.index)
            if isinstance(outcome, str):
                _signature_problem(report, entry.index, outcome)
                continue
            key_id, sequence = outcome
            scan.order[entry.index] = outcome
            seq = scan.sequences.setdefault(key_id, _Seq())
            first = seq.first_at.get(sequence)
            if first is not None:
                report.add("replay", f"entry {entry.index}: replays sequence {sequence} of key "
                                     f"{key_id[:16]}, first recorded at entry {first}", entry.index)
            else:
                seq.first_at[sequence] = entry.index
        if progress is not None:
            progress(expected)
    return scan


def _sequence_gaps(scan: _Scan) -> list[tuple[int, str]]:
    """Holes in each key's sequence numbers, as (entry index where the next number appears, message)."""
    gaps = []
    for key_id, seq in scan.sequences.items():
        numbers = sorted(seq.first_at)
        for before, after in zip(numbers, numbers[1:], strict=False):
            if after != before + 1:
                at = seq.first_at[after]
                missing = f"{before + 1}" if after == before + 2 else f"{before + 1}..{after - 1}"
                gaps.append((at, f"entry {at}: key {key_id[:16]} jumps from sequence {before} (entry "
                                 f"{seq.first_at[before]}) to {after}; record(s) {missing} are missing"))
    return gaps


def _classify_gaps(gaps: list[tuple[int, str]], vouched: int, report: VerifyReport) -> None:
    """A gap inside the checkpoint-vouched prefix cannot be a deletion: the signer skipped numbers.

    ``trustlayer.provenance.sequence`` reserves numbers in blocks, so a signer crash (or a
    record signed but never appended) leaves a hole. Where no matching checkpoint vouches
    for the entries, a hole may equally be a deleted entry, so it fails verification.
    """
    for at, message in gaps:
        if at < vouched:
            report.warnings.append(f"{message}: signed but never appended (a signer crash); a matching "
                                   f"checkpoint of size {vouched} rules out a deletion after it was signed")
        else:
            report.add("sequence-gap", f"{message} (deleted, or signed but never appended; no matching checkpoint "
                                       "covers this entry)", at)


def _open_checkpoints(stored: Sequence[StoredCheckpoint], saved: Sequence[bytes], log_keys: Keyring,
                      origin: str, report: VerifyReport) -> list[tuple[str, Checkpoint]]:
    valid: list[tuple[str, Checkpoint]] = []
    for row in stored:
        name = f"checkpoint #{row.id} (size {row.size})"
        try:
            cp = open_checkpoint(row.envelope, log_keys)
        except SignatureError as exc:
            report.add("checkpoint", f"{name}: does not verify with the trusted log keys; it was replaced or "
                                     f"forged ({exc})")
            continue
        if (cp.size, cp.root) != (row.size, row.root):
            report.add("checkpoint", f"{name}: the stored size or root differs from what the checkpoint signs "
                                     f"(signed size {cp.size}); the row was edited")
        valid.append((name, cp))
    for i, envelope in enumerate(saved):
        name = f"saved checkpoint {i + 1}"
        try:
            cp = open_checkpoint(envelope, log_keys)
        except SignatureError as exc:
            report.add("checkpoint", f"{name}: does not verify with the trusted log keys ({exc})")
            continue
        valid.append((f"{name} (size {cp.size})", cp))
    for name, cp in valid:
        if cp.origin != origin:
            report.add("checkpoint", f"{name}: belongs to log {cp.origin!r}, not to this log {origin!r}")
    return [(n, c) for n, c in valid if c.origin == origin]


_ENTRY_KINDS = frozenset({"deleted", "modified", "bad-signature", "untrusted-key", "replay"})


def _out_of_order(scan: _Scan) -> list[int]:
    """Entries holding a later sequence of their key than some entry after them, in index order.

    Concurrent writers legitimately reorder a little, so this is only a hint, used to name
    the entry behind a checkpoint mismatch (the earlier entry of a swapped pair).
    """
    lowest_after: dict[str, int] = {}
    flagged = []
    for index in sorted(scan.order, reverse=True):
        key, seq = scan.order[index]
        if seq > lowest_after.get(key, seq):
            flagged.append(index)
        lowest_after[key] = min(seq, lowest_after.get(key, seq))
    return sorted(flagged)


def _suspect(report: VerifyReport, hints: list[int], gaps: list[tuple[int, str]], low: int, high: int) -> int | None:
    """The first entry in ``[low, high)`` to blame for a root mismatch.

    An entry an entry-level check already blamed (or where a key's sequence jumps), else
    the first out-of-order entry in the range.
    """
    blamed = [p.index for p in report.problems
              if p.kind in _ENTRY_KINDS and p.index is not None and low <= p.index < high]
    blamed += [at for at, _ in gaps if low <= at < high]
    if blamed:
        return min(blamed)
    return next((i for i in hints if low <= i < high), None)


def _check_checkpoints(checkpoints: list[tuple[str, Checkpoint]], tree: MerkleTree, scan: _Scan,
                       gaps: list[tuple[int, str]], report: VerifyReport) -> int:
    """Check every checkpoint against the recomputed tree; return the size of the prefix they vouch for."""
    size = tree.size
    hints = _out_of_order(scan)
    matched: list[Checkpoint] = []
    failed: list[int] = []  # the first entry each failing checkpoint puts in doubt
    by_size: dict[int, tuple[str, Checkpoint]] = {}
    for name, cp in sorted(checkpoints, key=lambda nc: nc[1].size):
        other = by_size.get(cp.size)
        if other is not None and other[1].root != cp.root:
            report.add("fork", f"fork: {other[0]} and {name} both sign tree size {cp.size} with different roots "
                               f"({other[1].root.hex()[:16]}... and {cp.root.hex()[:16]}...)",
                       cp.size - 1 if cp.size else None)
        by_size.setdefault(cp.size, (name, cp))
        if cp.size > size:
            failed.append(size)
            report.add("truncated", f"{name}: signs {cp.size} entries but the log holds {size}; entries "
                                    f"{size}..{cp.size - 1} were removed (truncated)", size)
            continue
        if tree.root(cp.size) != cp.root:
            low = max((m.size for m in matched), default=0)
            failed.append(low)
            suspect = _suspect(report, hints, gaps, low, cp.size)
            where = (f"first suspicious entry: {suspect}" if suspect is not None
                     else f"first entry that can differ: {low}")
            report.add("root-mismatch", f"{name}: the tree recomputed from entries 0..{cp.size - 1} has a different "
                                        f"root; an entry in {low}..{cp.size - 1} was modified, reordered, inserted "
                                        f"or deleted ({where})", suspect if suspect is not None else low)
            continue
        if matched:
            prev = matched[-1]
            # RFC 9162 2.1.4.2: each matched checkpoint extends the previous one.
            try:
                verify_consistency(prev.size, cp.size, prev.root, cp.root,
                                   tree.consistency_proof(prev.size, cp.size))
            except ProofError as exc:
                report.add("inconsistent", f"{name}: not consistent with the checkpoint of size {prev.size}: {exc}")
        matched.append(cp)
    covered = max((m.size for m in matched), default=0)
    if size > covered:
        report.warnings.append(f"entries {covered}..{size - 1} are not covered by a checkpoint yet; removing them "
                               "would only be noticed against a saved checkpoint (--checkpoint)")
    return min([covered, *failed])


def verify_log(store: AuditStore, *, record_keys: Keyring, log_keys: Keyring, saved: Sequence[bytes] = (),
               progress: Callable[[int], None] | None = None, workers: int | None = None) -> VerifyReport:
    """Verify every entry and checkpoint of ``store``; return a report of what is wrong and where.

    ``record_keys`` are the keys trusted to sign hop records, ``log_keys`` those trusted
    to sign checkpoints; ``saved`` are checkpoint envelopes kept outside the log (for
    truncation and fork detection against an earlier view). ``progress`` is called with
    the number of entries read so far. ``workers`` processes check signatures (default:
    one per CPU from ``PARALLEL_FROM`` entries on, else this process only).
    """
    report = VerifyReport()
    tree = MerkleTree()
    if workers is None:
        workers = (os.cpu_count() or 1) if store.size() >= PARALLEL_FROM else 1
    scan = _scan_entries(store, record_keys, report, tree, progress, workers)
    gaps = _sequence_gaps(scan)
    checkpoints = _open_checkpoints(store.checkpoints(), saved, log_keys, store.origin, report)
    report.checkpoints = len(checkpoints)
    vouched = _check_checkpoints(checkpoints, tree, scan, gaps, report)
    _classify_gaps(gaps, vouched, report)
    report.size = tree.size
    report.root = tree.root()
    report.latest = max((c for _, c in checkpoints), key=lambda c: c.size, default=None)
    report.problems.sort(key=lambda p: (p.index is None, p.index if p.index is not None else 0))
    return report
