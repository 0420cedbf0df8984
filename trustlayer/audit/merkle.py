"""RFC 9162 Merkle tree hashes, inclusion proofs and consistency proofs.

    >>> from trustlayer.audit.merkle import MerkleTree, leaf_hash, verify_inclusion
    >>> tree = MerkleTree()
    >>> for data in (b"a", b"b", b"c"):
    ...     _ = tree.append(leaf_hash(data))
    >>> proof = tree.inclusion_proof(1, 3)
    >>> verify_inclusion(1, 3, leaf_hash(b"b"), proof, tree.root(3))

The tree keeps every complete (perfect, aligned) subtree hash, level by level, so an
append costs amortized O(1) hashes and the root or a proof for any earlier size costs
O(log n) lookups plus O(log n) hashes for the ragged right edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# RFC 9162 2.1.1: MTH({}) = HASH(), the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A Merkle proof is malformed or does not verify; the message says which check failed."""


# The hash state after the domain-separation byte: copying it is cheaper than a new hash
# object plus a copy of the (kilobyte-sized) envelope behind the prefix byte.
_LEAF_PREFIX = hashlib.sha256(b"\x00")


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))."""
    h = _LEAF_PREFIX.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: an interior node is HASH(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1), the RFC's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 tree over leaf hashes, with cached complete subtrees.

    ``levels[h][i]`` is the hash of the perfect subtree of height ``h`` covering leaves
    ``[i * 2**h, (i + 1) * 2**h)``; those never change once complete, which is what
    makes roots and proofs for every earlier tree size cheap.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, leaf: bytes) -> int:
        """Append one leaf hash (already ``leaf_hash``-ed); return its index."""
        index = self.size
        self.extend((leaf,))
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes in order; all are checked first, so a bad one leaves the tree unchanged."""
        leaves = list(leaf_hashes)
        for leaf in leaves:
            if len(leaf) != HASH_SIZE:
                raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        levels = self._levels
        for leaf in leaves:
            i = len(levels[0])
            levels[0].append(leaf)
            h = 0
            # Complete every parent whose right child just became complete.
            while i & 1:
                if h + 1 == len(levels):
                    levels.append([])
                levels[h + 1].append(node_hash(levels[h][i - 1], levels[h][i]))
                h, i = h + 1, i >> 1

    def truncate(self, size: int) -> None:
        """Drop every leaf from ``size`` on (undo of appends whose transaction rolled back)."""
        self._check_size(size)
        for height, level in enumerate(self._levels):
            del level[size >> height:]

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self._levels[0][index]

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (start aligned to its size's split)."""
        n = end - start
        if n & (n - 1) == 0:
            height = n.bit_length() - 1
            if start % n == 0:
                return self._levels[height][start >> height]
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is out of range: the tree has {self.size} leaves")

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` leaves (default: all), RFC 9162 2.1.1."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves, RFC 9162 2.1.3.1."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is out of range for tree size {size}")
        path: list[bytes] = []
        start, end = 0, size
        # PATH(m, D[n]) unrolled: descend toward the leaf, collecting the sibling subtree
        # roots; the RFC appends them bottom-up, so reverse at the end.
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._subtree(start + k, end))
                end = start + k
            else:
                path.append(self._subtree(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old_size`` is a prefix of ``new_size``, RFC 9162 2.1.4.1."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"old tree size {old_size} is out of range for new tree size {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        proof: list[bytes] = []
        # SUBPROOF(m, D[n], b) unrolled; ``m`` is relative to ``start``.
        start, end, m, complete = 0, new_size, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} element {i} is {len(h)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path, RFC 9162 2.1.3.2."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is out of range for tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    _check_hashes(proof, "inclusion proof")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path for this index and size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # RFC 9162 2.1.3.2 step 4.b.2: skip levels where this node has no right sibling.
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path for this index and size")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf ``index`` in the tree of ``size`` with ``root``."""
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise ProofError(f"inclusion proof for leaf {index} in tree size {size} gives root "
                         f"{computed.hex()[:16]}..., expected {root.hex()[:16]}...")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``old_size`` is a prefix of ``new_size``, RFC 9162 2.1.4.2."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    _check_hashes(proof, "consistency proof")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two roots for tree size {old_size} differ: "
                             f"{old_root.hex()[:16]}... and {new_root.hex()[:16]}...")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    # RFC 9162 2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Step 4: right-shift both while LSB(fn) is set.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # RFC 9162 2.1.4.2 step 6.b.2
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than expected")
    if fr != old_root:
        raise ProofError(f"consistency proof does not match the root of tree size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not match the root of tree size {new_size}")
