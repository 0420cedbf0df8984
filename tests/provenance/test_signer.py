import functools
import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from concurrency import run_in_threads

from trustlayer.errors import ConfigError, SignatureError
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import Record
from trustlayer.provenance.sequence import SequenceCounter
from trustlayer.provenance.signer import RecordSigner
from trustlayer.stages import Signer

from .conftest import SALT, agent_hop


def test_implements_the_signer_protocol(signer: RecordSigner) -> None:
    assert isinstance(signer, Signer)


def test_sequence_and_nonce_per_record(signer: RecordSigner, keyring: Keyring) -> None:
    records = [Record.from_envelope(signer.sign(agent_hop()).envelope, keyring) for _ in range(5)]
    assert [r.predicate.sequence for r in records] == [1, 2, 3, 4, 5]
    assert len({r.predicate.nonce for r in records}) == 5
    assert len({r.digest for r in records}) == 5


def test_sequence_survives_restart(alice_key: SigningKey, keyring: Keyring, tmp_path: Path) -> None:
    state = tmp_path / "seq.json"
    first = RecordSigner(alice_key, salt=SALT, state_path=state, sequence_block=4)
    seen = [Record.from_envelope(first.sign(agent_hop()).envelope, keyring).predicate.sequence for _ in range(6)]
    assert seen == [1, 2, 3, 4, 5, 6]
    assert json.loads(state.read_text()) == {alice_key.key_id: 8}  # two blocks of 4 reserved
    second = RecordSigner(alice_key, salt=SALT, state_path=state, sequence_block=4)  # a restart
    after = Record.from_envelope(second.sign(agent_hop()).envelope, keyring).predicate.sequence
    assert after == 9  # no close(): like a crash, it resumes above the reservation (gap 7..8)


def test_clean_restart_continues_without_a_gap(alice_key: SigningKey, keyring: Keyring, tmp_path: Path) -> None:
    state = tmp_path / "seq.json"
    first = RecordSigner(alice_key, salt=SALT, state_path=state, sequence_block=100)
    for _ in range(3):
        first.sign(agent_hop())
    first.close()
    assert json.loads(state.read_text()) == {alice_key.key_id: 3}
    second = RecordSigner(alice_key, salt=SALT, state_path=state, sequence_block=100)
    assert Record.from_envelope(second.sign(agent_hop()).envelope, keyring).predicate.sequence == 4
    # close() after another process reserved beyond us must not hand our numbers out again
    other = SequenceCounter(alice_key.key_id, state, block=100)
    assert other.next() == 104  # second holds 4..103
    second.close()
    assert json.loads(state.read_text()) == {alice_key.key_id: 203}  # unchanged: 5..103 stay skipped


def _sign_and_exit(state: str) -> None:
    counter = SequenceCounter("k" * 64, Path(state), block=50)
    counter.next()
    counter.next()  # no close(): the interpreter exit gives the rest back


def test_exit_gives_back_the_block(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_sign_and_exit, args=(str(tmp_path / "seq.json"),))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert json.loads((tmp_path / "seq.json").read_text()) == {"k" * 64: 2}


def test_sequence_unique_across_threads(tmp_path: Path) -> None:
    counter = SequenceCounter("k" * 64, tmp_path / "seq.json", block=16)
    out: list[list[int]] = [[] for _ in range(8)]

    def work(i: int) -> None:
        for _ in range(500):
            out[i].append(counter.next())

    run_in_threads(functools.partial(work, i) for i in range(8))
    every = [n for part in out for n in part]
    assert len(set(every)) == 4000
    assert all(a < b for part in out for a, b in zip(part, part[1:], strict=False))


def _draw(path: str, n: int, queue: "multiprocessing.Queue[list[int]]") -> None:
    counter = SequenceCounter("k" * 64, Path(path), block=8)
    queue.put([counter.next() for _ in range(n)])


def test_sequence_unique_across_processes_sharing_a_state_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_draw, args=(str(tmp_path / "seq.json"), 200, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    parts = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(set(parts[0]) | set(parts[1])) == 400


def test_corrupt_state_file_refuses_to_restart_numbering(tmp_path: Path) -> None:
    state = tmp_path / "seq.json"
    state.write_text("{garbage")
    with pytest.raises(ConfigError, match="not valid JSON; refusing to restart numbering"):
        SequenceCounter("k" * 64, state).next()
    state.write_text('{"k": "7"}')
    with pytest.raises(ConfigError, match="must map key ids to integers"):
        SequenceCounter("k" * 64, state).next()


def test_in_memory_counter() -> None:
    counter = SequenceCounter("k" * 64, None)
    assert [counter.next() for _ in range(3)] == [1, 2, 3]


def test_short_salt_is_refused(alice_key: SigningKey) -> None:
    with pytest.raises(SignatureError, match="salt must be at least 16 bytes"):
        RecordSigner(alice_key, salt=b"short", state_path=None)


def test_different_salts_give_unlinkable_content_digests(alice_key: SigningKey, keyring: Keyring) -> None:
    a = RecordSigner(alice_key, salt=SALT, state_path=None)
    b = RecordSigner(alice_key, salt=bytes(32), state_path=None)
    da = Record.from_envelope(a.sign(agent_hop()).envelope, keyring).statement.subject_digest("content")
    db = Record.from_envelope(b.sign(agent_hop()).envelope, keyring).statement.subject_digest("content")
    assert da != db


def test_concurrent_signing_gives_unique_verifying_records(signer: RecordSigner, keyring: Keyring) -> None:
    envelopes: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [signer.sign(agent_hop()).envelope for _ in range(100)]
        with lock:
            envelopes.extend(mine)

    run_in_threads([work] * 8)
    sequences = sorted(Record.from_envelope(e, keyring).predicate.sequence for e in envelopes)
    assert sequences == list(range(1, 801))
