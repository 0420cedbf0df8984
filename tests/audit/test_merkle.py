"""RFC 9162 Merkle tree: published transparency-dev vectors and properties against a naive MTH."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[1] / "assets" / "audit" / "transparency_dev"
REF = json.loads((VECTORS / "reference_vectors.json").read_text())
LEAVES = [bytes.fromhex(h) for h in REF["leaves_hex"]]
ROOTS = [bytes.fromhex(h) for h in REF["roots_hex"]]


def _tree(n: int) -> MerkleTree:
    return MerkleTree(leaf_hash(d) for d in LEAVES[:n])


def _naive_mth(leaves: list[bytes]) -> bytes:
    # RFC 9162 2.1.1, written as the definition reads.
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_naive_mth(leaves[:k]), _naive_mth(leaves[k:]))


def test_empty_root_is_sha256_of_nothing() -> None:
    assert MerkleTree().root() == bytes.fromhex(REF["empty_root_hex"])


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    tree = _tree(8)
    assert tree.root(size) == ROOTS[size - 1]
    assert _tree(size).root() == ROOTS[size - 1]


@pytest.mark.parametrize("vector", REF["inclusion"], ids=lambda v: f"leaf{v['leaf']}-size{v['size']}")
def test_reference_inclusion_proofs(vector: dict[str, object]) -> None:
    index, size = int(vector["leaf"]) - 1, int(vector["size"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    tree = _tree(8)
    assert tree.inclusion_proof(index, size) == expected
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), expected, ROOTS[size - 1])


@pytest.mark.parametrize("vector", REF["consistency"], ids=lambda v: f"{v['size1']}-{v['size2']}")
def test_reference_consistency_proofs(vector: dict[str, object]) -> None:
    old, new = int(vector["size1"]), int(vector["size2"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    assert _tree(8).consistency_proof(old, new) == expected
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize("path", sorted((VECTORS / "inclusion").rglob("*.json")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_testdata_inclusion(path: Path) -> None:
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)
        # The happy paths are proofs over the reference leaves: generation must agree too.
        assert _tree(8).inclusion_proof(case["leafIdx"], case["treeSize"]) == proof


@pytest.mark.parametrize("path", sorted((VECTORS / "consistency").rglob("*.json")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_testdata_consistency(path: Path) -> None:
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
        assert _tree(8).consistency_proof(case["size1"], case["size2"]) == proof


def test_inclusion_errors_name_the_problem() -> None:
    tree = _tree(8)
    proof = tree.inclusion_proof(5, 8)
    with pytest.raises(ProofError, match="out of range"):
        root_from_inclusion_proof(8, 8, tree.leaf(5), proof)
    with pytest.raises(ProofError, match="longer than the path"):
        verify_inclusion(5, 8, tree.leaf(5), [*proof, tree.root()], tree.root())
    with pytest.raises(ProofError, match="shorter than the path"):
        verify_inclusion(5, 8, tree.leaf(5), proof[:-1], tree.root())
    with pytest.raises(ProofError, match="element 1 is 3 bytes"):
        verify_inclusion(5, 8, tree.leaf(5), [proof[0], b"abc", proof[2]], tree.root())
    with pytest.raises(ValueError, match="tree size 9 is out of range"):
        tree.inclusion_proof(0, 9)


def test_consistency_errors_name_the_problem() -> None:
    tree = _tree(8)
    with pytest.raises(ProofError, match="two roots for tree size 8 differ"):
        verify_consistency(8, 8, tree.root(8), tree.root(7), [])
    with pytest.raises(ProofError, match="larger than new tree size"):
        verify_consistency(8, 7, tree.root(8), tree.root(7), [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_proofs_roundtrip_against_naive_definition(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaf_hash(d) for d in leaves)
    size = data.draw(st.integers(1, len(leaves)))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    root = tree.root(size)
    assert root == _naive_mth(leaves[:size])
    verify_inclusion(index, size, leaf_hash(leaves[index]), tree.inclusion_proof(index, size), root)
    verify_consistency(old, size, tree.root(old), root, tree.consistency_proof(old, size))
    # Any other leaf at that position must fail.
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(leaves[index] + b"x"), tree.inclusion_proof(index, size), root)


@settings(max_examples=60)
@given(st.lists(st.binary(max_size=8), max_size=70), st.lists(st.integers(min_value=0, max_value=9), max_size=12))
def test_extend_in_chunks_equals_append_one_by_one(leaves: list[bytes], chunks: list[int]) -> None:
    # extend inlines append's parent-completion loop; every size's root must come out the same
    one_by_one, chunked = MerkleTree(), MerkleTree()
    for d in leaves:
        one_by_one.append(leaf_hash(d))
    hashes = [leaf_hash(d) for d in leaves]
    start = 0
    for n in [*chunks, len(hashes)]:
        chunked.extend(hashes[start:start + n])
        start += n
    assert chunked.size == one_by_one.size == len(leaves)
    for size in range(len(leaves) + 1):
        assert chunked.root(size) == one_by_one.root(size) == _naive_mth(leaves[:size])


def test_extend_with_a_bad_leaf_hash_adds_nothing() -> None:
    tree = MerkleTree([leaf_hash(b"a")])
    with pytest.raises(ValueError, match="leaf hash must be 32 bytes, got 3"):
        tree.extend([leaf_hash(b"b"), b"bad"])
    assert tree.size == 1 and tree.root() == leaf_hash(b"a")
