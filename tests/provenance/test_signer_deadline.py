"""The signer keeps its gate stage deadline: the sequence counter's lock and file lock waits end by it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from deadlines import blocked_in_time, gives_up, held, start, waits
from stagekit import CLOUD, DEVICE, keeping_gate

from trustlayer.errors import DeadlineExceeded
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.records import Record
from trustlayer.provenance.signer import RecordSigner
from trustlayer.stages import Signed
from trustlayer.types import Message, Route

from .conftest import RAW, agent_hop

_HOLD = ("import fcntl, sys\n"
         "f = open(sys.argv[1], 'a+b')\n"
         "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n")


@contextmanager
def state_lock_held_by_another_process(signer: RecordSigner) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the exclusive ``flock`` on the signer's ``<state>.lock`` until stdin closes."""
    state = signer.sequence.state_path
    assert state is not None
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(state.with_name(state.name + ".lock"))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.stdin.close()  # the holder reads to the end, exits, and its lock goes with it
        proc.wait(timeout=10)
        proc.stdout.close()


def sequence_of(signed: object, keyring: Keyring) -> int:
    assert isinstance(signed, Signed)
    return Record.from_envelope(signed.envelope, keyring).predicate.sequence


def test_the_signer_declares_that_it_keeps_its_deadline() -> None:
    assert RecordSigner.keeps_deadline is True


def test_sign_gives_up_on_the_state_file_lock_another_process_holds(signer: RecordSigner,
                                                                   keyring: Keyring) -> None:
    with state_lock_held_by_another_process(signer) as holder:
        call = start(lambda: signer.sign(agent_hop()), seconds=0.3).join()
        assert call.finished, "sign waited past its deadline for the state file's lock"
        assert holder.poll() is None  # the other process still holds it
    assert isinstance(call.raised, DeadlineExceeded)
    assert "another process" in str(call.raised) and ".lock" in str(call.raised)
    assert RAW not in str(call.raised)
    assert sequence_of(signer.sign(agent_hop()), keyring) == 1  # giving up used no number


def test_sign_without_a_deadline_waits_for_the_state_file_lock_as_before(signer: RecordSigner,
                                                                        keyring: Keyring) -> None:
    with state_lock_held_by_another_process(signer):
        call = start(lambda: signer.sign(agent_hop()), seconds=None)
        time.sleep(0.5)
        assert not call.finished
    call.join()
    assert call.finished and call.raised is None
    assert sequence_of(call.value[0], keyring) == 1


def test_sign_gives_up_on_the_counter_lock_another_thread_holds(signer: RecordSigner, keyring: Keyring) -> None:
    gives_up(lambda: signer.sign(agent_hop()), held(signer.sequence._lock), about="sequence counter")
    assert sequence_of(signer.sign(agent_hop()), keyring) == 1


def test_sign_without_a_deadline_waits_for_the_counter_lock_as_before(signer: RecordSigner,
                                                                     keyring: Keyring) -> None:
    call = waits(lambda: signer.sign(agent_hop()), held(signer.sequence._lock))
    assert sequence_of(call.value[0], keyring) == 1


@pytest.mark.parametrize("state_lock", ["thread", "process"])
def test_a_gate_blocks_at_sign_while_the_sequence_counter_stays_locked(signer: RecordSigner,
                                                                      state_lock: str) -> None:
    gate = keeping_gate(signer=signer, identity=DEVICE.id, endpoints=(DEVICE, CLOUD), timeouts={"sign": 0.3})
    message = Message.from_text("hello", conversation_id="c1")

    def outbound() -> object:
        return gate.outbound(message, Route.between(DEVICE, CLOUD))

    if state_lock == "process":
        with state_lock_held_by_another_process(signer) as holder:
            blocked_in_time(outbound, stage="sign", seconds=0.3)
            assert holder.poll() is None
    else:
        lock = held(signer.sequence._lock)
        try:
            blocked_in_time(outbound, stage="sign", seconds=0.3)
            assert lock.locked()
        finally:
            lock.release()
