"""The gate: the one path every message takes across a trust boundary.

    outbound: detect ─► decide ─► transform ─► decide again ─► sign ─► record ──► may leave
    inbound:  authenticate ─► restore ─► verify ─► sign ─► record ──► caller

The path is written once, as a generator that yields stage calls (``_Call``) and
receives their results; thin runners drive it synchronously (``outbound``) or
asynchronously (``outbound_async``), each enforcing the per-stage timeouts: in the
caller's thread when every stage keeps its deadline (``trustlayer.deadline``), else on
a worker thread the caller abandons when a stage hangs. Any exception, timeout or
invalid result is thrown back into the path, which signs and records a *block* and
raises :class:`~trustlayer.errors.Blocked` (fail closed)::

    gate = Gate(detector=..., decider=..., transformer=..., signer=..., recorder=...)
    out = gate.outbound(message, route)      # raises Blocked, or returns what may leave
    reply = send(out.route.recipient, out.message)
    result = gate.inbound(reply, out.route, request=out)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from trustlayer import _watchdog, _workers, deadline
from trustlayer._gate_checks import check_findings, check_inspectable, check_transformed
from trustlayer.errors import Blocked, DeadlineExceeded, TrustError, Unverified
from trustlayer.stages import (
    Authenticator,
    Decider,
    Detector,
    PeerRecord,
    Recorder,
    Restorer,
    Signed,
    Signer,
    StreamRestorer,
    Transformer,
    Verifier,
)
from trustlayer.taint import TaintStore
from trustlayer.types import Decision, Endpoint, Finding, Hop, Message, Outcome, Route, Verdict, VerifyRequirement

__all__ = ["DEFAULT_TIMEOUTS", "Gate", "Inbound", "InboundStream", "Outbound"]

_log = logging.getLogger("trustlayer.gate")

#: Seconds each stage may take before the message is blocked; ``None`` disables a stage's timeout.
DEFAULT_TIMEOUTS: Mapping[str, float | None] = {
    "detect": 10.0,
    "decide": 2.0,
    "transform": 10.0,
    "sign": 5.0,
    "record": 10.0,
    "authenticate": 5.0,
    "restore": 10.0,
    "verify": 120.0,
}


@dataclass(frozen=True, slots=True)
class Outbound:
    """What the outbound path allows to leave, and why.

    ``message`` is the transformed message for ``route.recipient`` (which differs from
    the requested recipient after a reroute); ``record`` is the signed hop record.
    """

    message: Message
    route: Route
    decision: Decision
    findings: tuple[Finding, ...]
    record: Signed
    index: int
    original: Message = field(repr=False)

    @property
    def rerouted(self) -> bool:
        """True when policy sent the message somewhere other than requested."""
        return self.decision.outcome is Outcome.REROUTE


@dataclass(frozen=True, slots=True)
class Inbound:
    """A response after the inbound path: restored for the caller, verified when required."""

    message: Message
    verdict: Verdict | None
    record: Signed
    index: int
    peer: PeerRecord | None = None


class _Stop(Exception):
    """A stage failed, timed out, returned nonsense, or policy blocked: block the message."""

    def __init__(self, stage: str, reason: str, *, decision: Decision | None = None,
                 verdict: Verdict | None = None) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.decision = decision
        self.verdict = verdict


class _Call:
    """One stage call the path asks its runner to make (a plain slotted class: built several times per message)."""

    __slots__ = ("stage", "obj", "method", "args", "kwargs", "expect")

    def __init__(self, stage: str, obj: object, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 expect: type | tuple[type, ...]) -> None:
        self.stage = stage
        self.obj = obj
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.expect = expect


_Flow = Generator[_Call, Any, Any]
_T = TypeVar("_T")


def _describe(exc: BaseException) -> str:
    # Our own errors promise no raw content; a third-party message might carry some, so name its type only.
    if isinstance(exc, TrustError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} raised"


def _expect_name(expect: type | tuple[type, ...]) -> str:
    if isinstance(expect, tuple):
        return " or ".join(t.__name__ for t in expect)
    return expect.__name__


class Gate:
    """Composes the stages; the only way a message crosses a boundary.

    The gate is immutable after construction: stages and timeouts cannot change
    once the first message has passed. ``endpoints`` resolves reroute targets.
    """

    def __init__(
        self,
        *,
        detector: Detector,
        decider: Decider,
        transformer: Transformer,
        signer: Signer,
        recorder: Recorder,
        restorer: Restorer | None = None,
        authenticator: Authenticator | None = None,
        verifier: Verifier | None = None,
        identity: str = "",
        endpoints: Sequence[Endpoint] = (),
        timeouts: Mapping[str, float | None] | None = None,
        taint: TaintStore | None = None,
        observer: Callable[[Hop, Signed], None] | None = None,
    ) -> None:
        self._detector = detector
        self._decider = decider
        self._transformer = transformer
        self._signer = signer
        self._recorder = recorder
        self._restorer = restorer
        self._authenticator = authenticator
        self._verifier = verifier
        self._identity = identity
        self._endpoints = {e.id: e for e in endpoints}
        merged = dict(DEFAULT_TIMEOUTS)
        for stage, seconds in (timeouts or {}).items():
            if stage not in DEFAULT_TIMEOUTS:
                raise ValueError(f"gate timeout names stage {stage!r}, which does not exist "
                                 f"(stages: {', '.join(DEFAULT_TIMEOUTS)})")
            merged[stage] = seconds
        self._timeouts: Mapping[str, float | None] = merged
        self._watch = any(v is not None for v in merged.values())
        # Every stage bounds its own waits by its deadline: sync paths need no worker thread to abandon.
        undeclared = [type(stage).__name__ for stage in (
            detector, decider, transformer, signer, recorder, restorer, authenticator, verifier)
            if stage is not None and getattr(stage, "keeps_deadline", False) is not True]
        self._keeps = not undeclared
        if undeclared and self._watch:
            _log.debug("gate: %s do(es) not declare keeps_deadline; each sync path runs on a worker thread "
                       "so that a hung stage can be abandoned", ", ".join(sorted(set(undeclared))))
        self.taint = taint if taint is not None else TaintStore()
        self._observer = observer

    def _observe(self, hop: Hop, signed: Signed) -> None:
        # Observers watch recorded hops (metrics, displays); they are not a stage and cannot unblock anything.
        if self._observer is None:
            return
        try:
            self._observer(hop, signed)
        except Exception:  # noqa: BLE001 - an observer's failure must not change what crossed
            _log.warning("gate observer %s raised %s", self._observer, "an exception", exc_info=False)

    # ── the path, written once ────────────────────────────────────────────────────────────

    def _detect_and_decide(self, message: Message, route: Route, taint: frozenset[str],
                           candidates: Sequence[Endpoint],
                           earlier: tuple[tuple[Finding, ...], frozenset[str] | None] | None = None) -> _Flow:
        entities = yield _Call("decide", self._decider, "entities_for", (route,), {}, (frozenset, type(None)))
        if earlier is not None and _covers(earlier[1], entities):
            # A reroute whose destination needs no entity type the first detection skipped: reuse it.
            findings = tuple(f for f in earlier[0] if entities is None or f.entity_type in entities)
        else:
            found = yield _Call("detect", self._detector, "detect", (message,), {"entities": entities},
                                (list, tuple))
            findings = tuple(found)
            problem = check_findings(message, findings)
            if problem:
                raise _Stop("detect", problem)
        decision = yield _Call("decide", self._decider, "decide", (findings, route),
                               {"taint": taint, "candidates": tuple(candidates)}, Decision)
        return findings, entities, decision

    def _outbound_flow(self, message: Message, route: Route, candidates: Sequence[Endpoint],
                       parents: tuple[str, ...]) -> _Flow:
        decision: Decision | None = None
        try:
            # A field no stage reads would leave uninspected, whoever built the message.
            problem = check_inspectable(message)
            if problem is not None:
                raise _Stop("parse", problem)
            cid = message.conversation_id
            taint = self.taint.get(cid)
            findings, entities, decision = yield from self._detect_and_decide(message, route, taint, candidates)
            self.taint.add(cid, decision.classes)
            if decision.outcome is Outcome.REROUTE:
                route = route.to(self._target(decision, route, candidates))
                first = decision
                findings, entities, decision = yield from self._detect_and_decide(
                    message, route, taint | first.classes, candidates, (findings, entities))
                if decision.outcome is Outcome.REROUTE:
                    raise _Stop("decide", f"policy rerouted to {route.recipient.id!r} and then again to "
                                f"{decision.endpoint!r}; a reroute must settle in one step", decision=decision)
                # The record shows the reroute: outcome and rules of the first decision, transform of the second.
                decision = decision.model_copy(update={
                    "outcome": Outcome.REROUTE, "endpoint": route.recipient.id,
                    "rule_ids": first.rule_ids + decision.rule_ids,
                    "reasons": first.reasons + decision.reasons,
                    "citations": first.citations + decision.citations,
                    "classes": first.classes | decision.classes,
                })
            if decision.outcome is Outcome.BLOCK:
                raise _Stop("decide", "; ".join(decision.reasons) or "policy blocked the message",
                            decision=decision)
            leaving = message
            if decision.operators:
                leaving = yield _Call("transform", self._transformer, "transform",
                                      (message, findings, decision.operators), {}, Message)
                problem = check_transformed(message, leaving, findings, decision.operators)
                if problem:
                    raise _Stop("transform", problem, decision=decision)
                second = yield _Call("decide", self._decider, "decide", (findings, route),
                                     {"taint": taint | decision.classes, "applied": decision.operators,
                                      "candidates": tuple(candidates)}, Decision)
                if second.outcome not in (Outcome.ALLOW, Outcome.TRANSFORM) or (
                        set(second.operators) - set(decision.operators)):
                    reasons = "; ".join(second.reasons) or f"outcome {second.outcome.value}"
                    raise _Stop("decide", f"still not allowed after the transform: {reasons}", decision=second)
            counts: dict[str, int] = {}
            for f in findings:
                counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
            hop = Hop(direction="outbound", route=route, conversation_id=cid, content=leaving.canonical_bytes(),
                      decision=decision, entity_counts=counts, parents=parents, model=route.recipient.model)
            signed = yield _Call("sign", self._signer, "sign", (hop,), {}, Signed)
            index = yield _Call("record", self._recorder, "record", (signed.envelope,), {}, int)
            self._observe(hop, signed)
            return Outbound(message=leaving, route=route, decision=decision, findings=findings,
                            record=signed, index=index, original=message)
        except _Stop as stop:
            yield from self._block_flow(stop, message, route, parents, stop.decision or decision)

    def _plan_flow(self, message: Message, route: Route, candidates: Sequence[Endpoint]) -> _Flow:
        try:
            taint = self.taint.get(message.conversation_id)
            findings, _, decision = yield from self._detect_and_decide(message, route, taint, candidates)
            self.taint.add(message.conversation_id, decision.classes)
            return findings, decision
        except _Stop as stop:
            yield from self._block_flow(stop, message, route, (), stop.decision)

    def _inbound_flow(self, response: Message, route: Route, request: Outbound | None,
                      envelope: bytes | None, requirement: VerifyRequirement | None) -> _Flow:
        parents, decision = _answer_to(request)
        try:
            if request is not None and response.conversation_id != request.message.conversation_id:
                raise _Stop("restore", "the response belongs to a different conversation than its request")
            peer: PeerRecord | None = None
            if envelope is not None:
                if self._authenticator is None:
                    raise _Stop("authenticate", "a signed peer message arrived but no authenticator is configured")
                # Authenticate before anything parses or uses the content (DESIGN invariant 6).
                peer = yield _Call("authenticate", self._authenticator, "authenticate", (envelope,),
                                   {"audience": self._identity, "content": response.canonical_bytes()},
                                   PeerRecord)
                if peer.conversation_id != response.conversation_id:
                    raise _Stop("authenticate", "the signed record names a different conversation")
                if peer.sender != route.sender.id:
                    raise _Stop("authenticate", f"the record is signed by {peer.sender!r} but the message claims "
                                f"to come from {route.sender.id!r}")
                self.taint.add(response.conversation_id, peer.classes)
                parents = (*parents, peer.digest)
            restored = response
            if self._restorer is not None:
                restored = yield _Call("restore", self._restorer, "restore", (response,), {}, Message)
            verdict = yield from self._verify(request, restored, route, requirement)
            hop = Hop(direction="inbound", route=route, conversation_id=response.conversation_id,
                      content=response.canonical_bytes(), verdict=verdict, parents=parents,
                      decision=decision, model=route.recipient.model)
            signed = yield _Call("sign", self._signer, "sign", (hop,), {}, Signed)
            index = yield _Call("record", self._recorder, "record", (signed.envelope,), {}, int)
            self._observe(hop, signed)
            return Inbound(message=restored, verdict=verdict, record=signed, index=index, peer=peer)
        except _Stop as stop:
            yield from self._block_flow(stop, response, route, parents, decision)

    def _verify(self, request: Outbound | None, restored: Message, route: Route,
                requirement: VerifyRequirement | None) -> _Flow:
        if requirement is None and request is not None:
            requirement = request.decision.verify
        if requirement is None:
            return None
        if self._verifier is None or request is None:
            raise _Stop("verify", "policy requires verification but no verifier (or no request) is available")
        verdict = yield _Call("verify", self._verifier, "verify", (request.original, restored, route, requirement),
                              {}, Verdict)
        if not verdict.verified:
            raise _Stop("verify", f"quorum {requirement.quorum} of {requirement.of} not met "
                        f"(agreement {verdict.agreement:.2f}; dissenting: {', '.join(verdict.dissenting) or 'none'};"
                        f" abstained: {', '.join(verdict.abstained) or 'none'})", verdict=verdict)
        return verdict

    def _block_flow(self, stop: _Stop, message: Message, route: Route, parents: tuple[str, ...],
                    decision: Decision | None) -> _Flow:
        hop = Hop(direction="block", route=route, conversation_id=message.conversation_id,
                  content=message.canonical_bytes(), decision=decision, parents=parents,
                  stage=stop.stage, reason=stop.reason, verdict=stop.verdict)
        rule_ids = decision.rule_ids if decision is not None else ()
        try:
            signed = yield _Call("sign", self._signer, "sign", (hop,), {}, Signed)
            yield _Call("record", self._recorder, "record", (signed.envelope,), {}, int)
            self._observe(hop, signed)
        except _Stop as again:
            raise Blocked(stop.stage, f"{stop.reason}; the block itself could not be recorded "
                          f"({again.stage}: {again.reason})", rule_ids=rule_ids) from None
        if stop.stage == "verify":
            raise Unverified(stop.reason, verdict=stop.verdict, record_id=signed.digest)
        raise Blocked(stop.stage, stop.reason, rule_ids=rule_ids, record_id=signed.digest)

    def _target(self, decision: Decision, route: Route, candidates: Sequence[Endpoint]) -> Endpoint:
        for e in (*candidates, route.sender):
            if e.id == decision.endpoint:
                return e
        if decision.endpoint in self._endpoints:
            return self._endpoints[decision.endpoint]
        raise _Stop("decide", f"policy rerouted to endpoint {decision.endpoint!r}, which is not declared",
                    decision=decision)

    # ── runners ───────────────────────────────────────────────────────────────────────────

    def _invoke(self, call: _Call) -> Any:
        result = getattr(call.obj, call.method)(*call.args, **call.kwargs)
        if not isinstance(result, call.expect):
            raise _Stop(call.stage, f"{type(call.obj).__name__}.{call.method} returned {type(result).__name__}, "
                        f"expected {_expect_name(call.expect)}")
        return result

    def _drive(self, flow: _Flow, call_stage: Callable[[_Call], Any]) -> Any:
        value: Any = None
        error: _Stop | None = None
        while True:
            try:
                call = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value
            value, error = None, None
            try:
                value = call_stage(call)
            except _Stop as stop:
                error = stop
            except Exception as exc:  # noqa: BLE001 - fail closed on anything a stage raises
                error = _Stop(call.stage, _describe(exc))

    def _invoke_in_time(self, call: _Call) -> Any:
        """Invoke a stage that keeps its deadline, here; past the deadline when it returns, it timed out."""
        seconds = self._timeouts.get(call.stage)
        if seconds is None:
            return self._invoke(call)
        # In a nested path the outer stage's deadline may come first: ``at`` is the one in force.
        previous, at = deadline._enter(_monotonic() + seconds)
        try:
            result = self._invoke(call)
        except Exception as exc:
            # Gave up waiting (a wait may end a hair early), or raised anything after time ran out.
            if isinstance(exc, DeadlineExceeded) or _monotonic() > at:
                raise _Stop(call.stage, f"timed out after {seconds} s") from None
            raise
        finally:
            deadline._leave(previous)
        if _monotonic() > at:
            raise _Stop(call.stage, f"timed out after {seconds} s")
        return result

    def _run(self, flow: _Flow, on_timeout: Callable[[_Stop], _Flow]) -> Any:
        if not self._watch:
            return self._drive(flow, self._invoke)
        if self._keeps:
            return self._drive(flow, self._invoke_in_time)
        watch: _Watched | None = getattr(_ambient, "watch", None)
        if watch is not None and watch.gate is self:
            # Inside ``offload``: this thread is already the worker and the event loop watches it.
            return watch.drive_here(flow, on_timeout)
        try:
            return _Watched(self).run(flow)
        except _TimedOut as late:
            self._record_timeout(_Stop(late.stage, f"timed out after {late.seconds} s"), on_timeout)
        raise AssertionError("unreachable")  # pragma: no cover - _record_timeout always raises

    def _record_timeout(self, stop: _Stop, on_timeout: Callable[[_Stop], _Flow]) -> None:
        """Sign and record the block of a path whose stage timed out; raise it."""
        try:
            _Watched(self).run(on_timeout(stop))
        except _TimedOut as again:
            raise Blocked(stop.stage, f"{stop.reason}; the block itself could not be recorded "
                          f"({again.stage} timed out after {again.seconds} s)") from None

    async def offload(self, fn: Callable[[], _T], *, limiter: anyio.CapacityLimiter | None = None) -> _T:
        """Run ``fn`` in a worker thread; the gate paths it calls run there, watched from the event loop.

        ``fn`` calls this gate's sync paths (``outbound``, ``inbound``, ...) and anything else
        (an endpoint client, say): one thread hand-off for all of it, where each path
        would otherwise hand its stages to a worker of its own. Per-stage timeouts still
        hold: the event loop tracks the running stage's deadline, and when it passes the
        thread is abandoned, the block is signed and recorded, and ``Blocked`` is raised.
        A path in the abandoned thread stops before its next stage and never returns a
        result that could be sent on.
        """
        if not self._watch or self._keeps:
            # Stages that keep their deadlines time themselves out in that thread: nothing to watch.
            return await anyio.to_thread.run_sync(fn, limiter=limiter)
        watch = _Watched(self)
        outcome: list[tuple[bool, Any]] = []

        def work() -> tuple[bool, Any]:
            _ambient.watch = watch
            try:
                return True, fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the event loop
                return False, exc
            finally:
                _ambient.watch = None

        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # another anyio backend (trio): a watcher task per call
        if loop is not None:
            with anyio.CancelScope() as scope:
                # One timer per event loop checks every offloaded call's deadline (cheaper than a task each).
                _LoopWatchers.of(loop).add(watch, scope)
                try:
                    outcome.append(await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=limiter))
                finally:
                    _LoopWatchers.of(loop).discard(watch)
        else:
            async with anyio.create_task_group() as tasks:
                async def watcher() -> None:
                    while not watch.expired():
                        await anyio.sleep(watch.poll())
                    tasks.cancel_scope.cancel()

                tasks.start_soon(watcher)
                outcome.append(await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=limiter))
                tasks.cancel_scope.cancel()
        if not outcome:
            stop = _Stop(watch.stage, f"timed out after {watch.seconds} s")
            on_timeout = watch.on_timeout
            if on_timeout is None:  # pragma: no cover - a deadline is only ever set inside a path
                raise Blocked(stop.stage, stop.reason)
            await anyio.to_thread.run_sync(lambda: self._record_timeout(stop, on_timeout))
        ok, value = outcome[0]
        if not ok:
            raise value
        result: _T = value
        return result

    async def _run_async(self, flow: _Flow) -> Any:
        value: Any = None
        error: _Stop | None = None
        while True:
            try:
                call = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value
            value, error = None, None
            try:
                value = await self._invoke_async(call)
            except _Stop as stop:
                error = stop
            except Exception as exc:  # noqa: BLE001 - fail closed
                error = _Stop(call.stage, _describe(exc))

    async def _invoke_async(self, call: _Call) -> Any:
        seconds = self._timeouts.get(call.stage)
        twin = getattr(call.obj, f"{call.method}_async", None)
        try:
            with anyio.fail_after(seconds):
                if twin is not None:
                    result = await twin(*call.args, **call.kwargs)
                else:
                    fn = getattr(call.obj, call.method)
                    result = await anyio.to_thread.run_sync(lambda: fn(*call.args, **call.kwargs),
                                                            abandon_on_cancel=True)
        except TimeoutError:
            raise _Stop(call.stage, f"timed out after {seconds} s") from None
        if not isinstance(result, call.expect):
            raise _Stop(call.stage, f"{type(call.obj).__name__}.{call.method} returned {type(result).__name__}, "
                        f"expected {_expect_name(call.expect)}")
        return result

    # ── public API ───────────────────────────────────────────────────────────────────────

    def outbound(self, message: Message, route: Route, *, candidates: Sequence[Endpoint] = (),
                 parents: Sequence[str] = ()) -> Outbound:
        """Run the outbound path; return what may leave, or raise ``Blocked`` (recorded)."""
        result: Outbound = self._run(self._outbound_flow(message, route, candidates, tuple(parents)),
                                     lambda stop: self._block_flow(stop, message, route, tuple(parents), None))
        return result

    async def outbound_async(self, message: Message, route: Route, *, candidates: Sequence[Endpoint] = (),
                             parents: Sequence[str] = ()) -> Outbound:
        """Async twin of :meth:`outbound`: the path runs in one worker thread, watched from the event loop."""
        return await self.offload(lambda: self.outbound(message, route, candidates=candidates, parents=parents))

    def plan(self, message: Message, route: Route, *,
             candidates: Sequence[Endpoint] = ()) -> tuple[tuple[Finding, ...], Decision]:
        """Detect and decide only (for routers choosing among allowed endpoints); nothing is signed.

        A failing stage still blocks, and the block is recorded.
        """
        result: tuple[tuple[Finding, ...], Decision] = self._run(
            self._plan_flow(message, route, candidates),
            lambda stop: self._block_flow(stop, message, route, (), None))
        return result

    async def plan_async(self, message: Message, route: Route, *,
                         candidates: Sequence[Endpoint] = ()) -> tuple[tuple[Finding, ...], Decision]:
        """Async twin of :meth:`plan`."""
        return await self.offload(lambda: self.plan(message, route, candidates=candidates))

    def inbound(self, response: Message, route: Route, *, request: Outbound | None = None,
                envelope: bytes | None = None, verify: VerifyRequirement | None = None) -> Inbound:
        """Run the inbound path on a response (or a signed peer message, with ``envelope``)."""
        result: Inbound = self._run(self._inbound_flow(response, route, request, envelope, verify),
                                    self._inbound_block(response, route, request))
        return result

    async def inbound_async(self, response: Message, route: Route, *, request: Outbound | None = None,
                            envelope: bytes | None = None, verify: VerifyRequirement | None = None) -> Inbound:
        """Async twin of :meth:`inbound`.

        A response that must be verified runs on the event loop (consensus asks its panel
        concurrently; other stages hop to threads); any other runs in one worker thread.
        """
        if verify is None and (request is None or request.decision.verify is None):
            return await self.offload(
                lambda: self.inbound(response, route, request=request, envelope=envelope, verify=verify))
        result: Inbound = await self._run_async(self._inbound_flow(response, route, request, envelope, verify))
        return result

    def _inbound_block(self, response: Message, route: Route,
                       request: Outbound | None) -> Callable[[_Stop], _Flow]:
        parents, decision = _answer_to(request)
        return lambda stop: self._block_flow(stop, response, route, parents, decision)

    def stream_inbound(self, route: Route, *, request: Outbound) -> InboundStream:
        """Restore a streamed response chunk by chunk; ``finish()`` records it (and verifies, buffered)."""
        if self._restorer is None:
            raise Blocked("restore", "a streamed response needs a restorer and none is configured")
        return InboundStream(self, route, request, self._restorer)

    def record_block(self, stage: str, reason: str, message: Message, route: Route,
                     decision: Decision | None = None, *, request: Outbound | None = None) -> Blocked:
        """Sign and record a block decided outside the gate (e.g. by ``@route``); return the error to raise.

        ``request``: the block is of the answer to this outbound message (an answer the caller
        could not read); the block's record names the request's record as its parent.
        """
        parents, answered = _answer_to(request)
        decision = decision if decision is not None else answered
        flow = self._block_flow(_Stop(stage, reason), message, route, parents, decision)
        try:
            self._run(flow, lambda stop: self._block_flow(stop, message, route, parents, decision))
        except Blocked as blocked:
            return blocked
        return Blocked(stage, reason)  # pragma: no cover - _block_flow always raises

    def with_decider(self, decider: Decider) -> Gate:
        """A new gate identical to this one but for its policy (a reload), sharing the taint store.

        The gate itself never changes: a message in flight finishes on the gate it started
        on, so ``entities_for`` and ``decide`` always come from the same policy.
        """
        return Gate(detector=self._detector, decider=decider, transformer=self._transformer, signer=self._signer,
                    recorder=self._recorder, restorer=self._restorer, authenticator=self._authenticator,
                    verifier=self._verifier, identity=self._identity, endpoints=tuple(self._endpoints.values()),
                    timeouts=self._timeouts, taint=self.taint, observer=self._observer)

    def warm(self) -> None:
        """Let stages load what they would load on the first message (models, lookup tables).

        Each stage with a ``warm()`` method gets it called once; servers call this before
        they accept requests, so that the first request is not the slow one.
        """
        seen: set[int] = set()
        for stage in (self._detector, self._decider, self._transformer, self._restorer, self._signer,
                      self._recorder, self._authenticator, self._verifier):
            warm = getattr(stage, "warm", None)
            if stage is None or id(stage) in seen or not callable(warm):
                continue
            seen.add(id(stage))
            warm()

    @property
    def decider(self) -> Decider:
        """The policy stage this gate decides with."""
        return self._decider

    def close(self) -> None:
        """Nothing to release: worker threads (for stages that do not keep deadlines) are shared by all gates."""


class InboundStream:
    """One streamed response passing the inbound path.

    A stream may interleave several texts (``channel``s: each choice's content, each
    tool call's arguments); each gets its own restorer. ``feed`` returns restored text
    that is safe to emit now (the restorer holds back only what could be the start of
    a placeholder); ``flush`` ends one channel; ``finish`` ends the rest, then signs and
    records the whole response as one inbound hop and returns each channel's tail.
    When policy requires verification, nothing is emitted before ``finish`` verified.
    """

    def __init__(self, gate: Gate, route: Route, request: Outbound, restorer: Restorer) -> None:
        self._gate = gate
        self._route = route
        self._request = request
        self._restorer = restorer
        self._cid = request.message.conversation_id
        self._streams: dict[str, StreamRestorer] = {}
        self._raw: dict[str, list[str]] = {}
        self._out: dict[str, list[str]] = {}
        self._buffer = request.decision.verify is not None
        self.inbound: Inbound | None = None
        # How the stream ended, for its one record: "finish" (the inbound hop), "block", "abandon".
        self._end: str | None = None
        self._end_lock = threading.Lock()

    @property
    def ended(self) -> bool:
        """True once the answer's end is recorded, or being recorded (finished, blocked or abandoned)."""
        return self._end is not None

    @property
    def buffering(self) -> bool:
        """True when nothing may be emitted before ``finish`` (verification is required)."""
        return self._buffer

    def channels(self) -> list[str]:
        """The channels still open."""
        return list(self._streams)

    def feed(self, chunk: str, channel: str = "content") -> str:
        """Take the next text chunk of ``channel`` as received; return restored text to emit now."""
        stream = self._streams.get(channel)
        if stream is None:
            if channel in self._raw:
                raise self._block("restore", f"stream channel {channel!r} received text after it was flushed")
            try:
                stream = self._streams[channel] = self._restorer.stream(self._cid)
            except Exception as exc:  # noqa: BLE001 - fail closed mid-stream
                raise self._block("restore", _describe(exc)) from None
        self._raw.setdefault(channel, []).append(chunk)
        try:
            text = stream.feed(chunk)
        except Exception as exc:  # noqa: BLE001 - fail closed mid-stream
            raise self._block("restore", _describe(exc)) from None
        self._out.setdefault(channel, []).append(text)
        return "" if self._buffer else text

    def flush(self, channel: str = "content") -> str:
        """End ``channel``; return what its restorer held back (nothing while buffering for verification)."""
        stream = self._streams.pop(channel, None)
        if stream is None:
            return ""
        try:
            tail = stream.flush()
        except Exception as exc:  # noqa: BLE001
            raise self._block("restore", _describe(exc)) from None
        self._out.setdefault(channel, []).append(tail)
        return "" if self._buffer else tail

    def finish(self) -> dict[str, str]:
        """End every channel, record the response, and return the text still to emit per channel."""
        if not self._ending("finish"):
            raise Blocked("restore", "the answer already ended (it was abandoned or blocked)")
        tails = {channel: self.flush(channel) for channel in list(self._streams)}
        raw = Message.from_text(self._joined(self._raw), conversation_id=self._cid)
        restored = Message.from_text(self._joined(self._out), conversation_id=self._cid)
        gate = self._gate
        # The stream was restored incrementally; the recorded hop covers the whole response as received.
        flow = _skip_restore(gate._inbound_flow(raw, self._route, self._request, None, None), restored)
        self.inbound = gate._run(flow, gate._inbound_block(raw, self._route, self._request))
        if self._buffer:
            return {channel: "".join(parts) for channel, parts in self._out.items()}
        return tails

    @staticmethod
    def _joined(parts: Mapping[str, list[str]]) -> str:
        if set(parts) <= {"content"}:
            return "".join(parts.get("content", []))
        return json.dumps({k: "".join(v) for k, v in sorted(parts.items())}, ensure_ascii=False)

    def abandon(self, reason: str) -> None:
        """The answer ended before ``finish`` (the client left, the upstream broke off): record its block.

        Does nothing when the stream already ended and was recorded (finished, or blocked).
        """
        if self._ending("abandon"):
            self._record_block("restore", f"the answer ended before it was complete: {reason}")

    def _ending(self, how: str) -> bool:
        """Claim the stream's one end for ``how``; False when it already ended another way.

        A block may follow a "finish" claim (finishing failed: that block is the record).
        """
        with self._end_lock:
            if self._end is not None and not (how == "block" and self._end == "finish"):
                return False
            self._end = how
            return True

    def _block(self, stage: str, reason: str) -> Blocked:
        if not self._ending("block"):
            return Blocked(stage, reason)  # the stream's end is recorded already
        return self._record_block(stage, reason)

    def _record_block(self, stage: str, reason: str) -> Blocked:
        raw = Message.from_text(self._joined(self._raw), conversation_id=self._cid)
        return self._gate.record_block(stage, reason, raw, self._route, request=self._request)


def _answer_to(request: Outbound | None) -> tuple[tuple[str, ...], Decision | None]:
    """The parents and the decision of a record of the answer to ``request`` (none without a request)."""
    if request is None:
        return (), None
    return (request.record.digest,), request.decision


def _skip_restore(flow: _Flow, restored: Message) -> _Flow:
    """Drive an inbound flow whose restore step already happened chunk by chunk."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        if call.stage == "restore" and call.method == "restore":
            value, error = restored, None
            continue
        try:
            value, error = (yield call), None
        except _Stop as stop:
            value, error = None, stop


def _covers(searched: frozenset[str] | None, needed: frozenset[str] | None) -> bool:
    """True when a detection over ``searched`` gives exactly what one over ``needed`` would.

    Only the same request, or a request for nothing, qualifies: a detection over other types may
    have resolved an overlap in favour of a type the new request does not ask for.
    """
    return needed == searched or needed == frozenset()


class _TimedOut(Exception):
    def __init__(self, stage: str, seconds: float | None) -> None:
        super().__init__(stage)
        self.stage = stage
        self.seconds = seconds


# Set in a thread that ``Gate.offload`` runs: the gate paths called there run inline, watched from the loop.
_ambient = threading.local()


class _LoopWatchers:
    """The offloaded calls of one asyncio event loop, their deadlines checked by one re-armed timer."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWatchers] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._active: dict[_Watched, anyio.CancelScope] = {}
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _LoopWatchers:
        found = cls._by_loop.get(loop)
        if found is None:
            found = cls._by_loop[loop] = cls(loop)
        return found

    def add(self, watch: _Watched, scope: anyio.CancelScope) -> None:
        self._active[watch] = scope
        if self._timer is None:
            self._timer = self._loop.call_later(_WATCH_EVERY, self._tick)

    def discard(self, watch: _Watched) -> None:
        self._active.pop(watch, None)

    def _tick(self) -> None:
        self._timer = None
        for watch, scope in list(self._active.items()):
            try:
                expired = watch.expired()
            except Exception:  # noqa: BLE001 - one failing check must not stop the timer for every other call
                _log.exception("gate: a deadline check raised; the call is cancelled (fail closed)")
                watch.cancel()  # its path must not go on to a next stage or return a result
                expired = True
            if expired:
                self._active.pop(watch, None)
                scope.cancel()
        if self._active:
            self._timer = self._loop.call_later(_WATCH_EVERY, self._tick)


#: How often (seconds) a deadline watcher (the watchdog thread, an event loop's timer) looks at a path.
_WATCH_EVERY = _watchdog.EVERY

_monotonic = time.monotonic

#: Seconds a worker thread may take to pick up a path before the message is blocked.
_PICKUP_SECONDS = 10.0


class _Watched:
    """Runs one flow in a worker thread while the caller enforces each stage's deadline.

    One thread hand-off per message (not per stage). When a stage passes its deadline
    the caller stops waiting, the worker is told to stop before its next stage call,
    and the hung stage's thread is abandoned (a Python thread cannot be killed).
    """

    __slots__ = ("_gate", "_timeouts", "_lock", "_stage", "_seconds", "_deadline", "_cancelled", "_done",
                 "_woken", "_result", "_error", "on_timeout")

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._timeouts = gate._timeouts
        self._lock = threading.Lock()
        # Until the worker starts the first stage, the path is "gate" with its own deadline: a worker
        # that never picks the flow up (e.g. a thread lost across fork) must not leave the caller waiting.
        self._stage = "gate"
        self._seconds: float | None = _PICKUP_SECONDS
        self._deadline: float | None = None
        self._cancelled = False
        self._done = threading.Lock()
        self._done.acquire()  # released once: by the worker when the flow has finished, or by a timeout
        self._woken = False
        self._result: Any = None
        self._error: BaseException | None = None
        self.on_timeout: Callable[[_Stop], _Flow] | None = None

    @property
    def gate(self) -> Gate:
        return self._gate

    @property
    def stage(self) -> str:
        return self._stage

    @property
    def seconds(self) -> float | None:
        return self._seconds

    def _overdue(self) -> bool:
        """Whether the running stage is past its deadline (the caller holds ``_lock``)."""
        deadline = self._deadline  # read once: the worker clears it without the lock
        return deadline is not None and _monotonic() > deadline

    def expired(self) -> bool:
        """True (and the flow told to stop) when the running stage is past its deadline."""
        with self._lock:
            if self._overdue():
                self._cancelled = True
                return True
            return False

    def cancel(self) -> None:
        """Give up on the path: it stops before its next stage and its result is refused."""
        with self._lock:
            self._cancelled = True

    def check(self) -> bool:
        """From the watchdog thread: past the deadline, stop the flow and wake the caller. True when woken."""
        with self._lock:
            if self._woken:
                return True
            if not self._overdue():
                return False
            self._cancelled = self._woken = True
        self._done.release()
        return True

    def poll(self) -> float:
        """Seconds until the next deadline check: at the deadline, and at least every ``_WATCH_EVERY``."""
        deadline = self._deadline  # one attribute read: no lock needed to look
        return _WATCH_EVERY if deadline is None else min(max(0.0, deadline - _monotonic()), _WATCH_EVERY)

    def drive_here(self, flow: _Flow, on_timeout: Callable[[_Stop], _Flow]) -> Any:
        """Run a path in this (already watched) thread; refuse its result if the watcher gave up on it."""
        with self._lock:
            self.on_timeout = on_timeout
        result = self._gate._drive(flow, self._call)
        with self._lock:
            if self._cancelled:
                raise _Cancelled
        return result

    def _call(self, call: _Call) -> Any:
        """Invoke one stage, keeping its deadline for the watcher (``Gate._drive`` calls this per stage)."""
        seconds = self._timeouts.get(call.stage)
        deadline = None if seconds is None else _monotonic() + seconds
        with self._lock:
            # The watcher decides "expired" under this lock; a stage starts only if it has not.
            if self._cancelled:
                raise _Cancelled
            self._stage = call.stage
            self._seconds = seconds
            self._deadline = deadline
        try:
            return self._gate._invoke(call)
        finally:
            # No lock: whatever the watcher decides from here on, the next stage and the result check see it.
            self._deadline = None

    def _work(self, flow: _Flow) -> None:
        try:
            self._result = self._gate._drive(flow, self._call)
        except BaseException as exc:  # noqa: BLE001 - handed over to the caller's thread
            self._error = exc
        finally:
            with self._lock:
                woken, self._woken = self._woken, True
            if not woken:
                self._done.release()

    def run(self, flow: _Flow) -> Any:
        self._deadline = _monotonic() + _PICKUP_SECONDS
        # An untimed wait (a timed one arms a kernel timer per call): the watchdog thread wakes us at a deadline.
        _watchdog.watch(self)
        try:
            _workers.start(lambda: self._work(flow))
            self._done.acquire()
        finally:
            _watchdog.forget(self)  # also when interrupted (KeyboardInterrupt) or no worker could start
        if self._cancelled:
            raise _TimedOut(self._stage, self._seconds)
        if self._error is not None:
            raise self._error
        return self._result


class _Cancelled(BaseException):
    """The caller gave up on this flow (a stage timed out): stop before the next stage.

    A ``BaseException``, so that the driver's fail-closed ``except Exception`` does not turn it
    into a block the abandoned thread would then try to sign and record.
    """
