"""Consensus: ask a panel of endpoints concurrently and accept an answer only when a quorum agrees.

    >>> from trustlayer.verifiers import Consensus, EndpointAsker
    >>> consensus = Consensus(panel, asker=EndpointAsker(),                 # doctest: +SKIP
    ...                       policy=lambda msg, route: gate.outbound(msg, route))
    >>> verdict = consensus.verify(request, response, route, requirement)   # doctest: +SKIP
    >>> verdict.outcome, verdict.dissenting                                  # doctest: +SKIP
    ('verified', ('cloud-b',))

Each endpoint receives the request as policy transformed it *for that endpoint*; an
endpoint policy refuses (``None`` or ``Blocked``) is not asked and abstains with reason
``policy``, and so is one whose request policy rerouted elsewhere (``policy: rerouted``,
seen when the hook returns the gate's ``Outbound`` rather than its bare message).
Answers are gathered until the deadline; an endpoint still pending then abstains with
``timeout``, one that failed with ``error: ...``. Wall time is that of the slowest
endpoint within the deadline, not the sum. Votes are counted by
:func:`trustlayer.verifiers.tally.tally`.

In a gate stage with a deadline (``trustlayer.deadline``), the synchronous ``verify``
waits for the verdict no longer than the deadline: then it cancels the fan-out (the
panel's asks stop) and raises ``DeadlineExceeded``. Work already handed to a thread
by then (restoring answers, a scorer, the reputation write) finishes in the background,
as it would in an abandoned gate worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from trustlayer import deadline as stage_deadline
from trustlayer.errors import Blocked, ConfigError, DeadlineExceeded, EndpointError, EndpointTimeout
from trustlayer.types import Endpoint, Message, Route, Verdict, VerifyRequirement
from trustlayer.verifiers.agreement import Measure, measure_for
from trustlayer.verifiers.askers import Asker
from trustlayer.verifiers.reputation import Reputation
from trustlayer.verifiers.tally import tally

__all__ = ["Consensus", "Policy", "Prepare", "Prepared", "Restore", "Scorer", "response_text"]


@runtime_checkable
class Prepared(Protocol):
    """A message prepared for a route, as the gate's ``Outbound`` carries it."""

    @property
    def message(self) -> Message:
        """The message as it may leave."""
        ...

    @property
    def route(self) -> Route:
        """Where it may go (after any reroute)."""
        ...


_Ready = Message | Prepared | None

Prepare = Callable[[Endpoint], "_Ready | Awaitable[_Ready]"]
"""Gives the message as it may go to one endpoint, or ``None`` (or raises ``Blocked``) when it may not.

Returning the gate's ``Outbound`` itself is safest: a reroute is then detected and the
endpoint is not asked, instead of receiving a message prepared for somebody else.
"""

Policy = Callable[[Message, Route], "_Ready | Awaitable[_Ready]"]
"""The gate's outbound path for one route: ``lambda m, r: gate.outbound(m, r)`` (the ``Outbound``)."""

Restore = Callable[[Message], Message]
"""Restores a conversation's placeholders in a response (``Restorer.restore``)."""

Scorer = Callable[[Message, str], Mapping[str, float]]
"""Extra evidence for an accepted answer, e.g. the local model's log-probabilities of it."""

T = TypeVar("T")


def response_text(response: Message) -> str:
    """The answer text of a response message: its text, or its last assistant turn's content."""
    if response.turns is None:
        return response.text or ""
    for turn in reversed(response.turns):
        if turn.role == "assistant" and turn.content is not None:
            if isinstance(turn.content, str):
                return turn.content
            return "".join(part.text for part in turn.content)
    raise ConfigError("the response to verify has no assistant turn with content")


class Consensus:
    """A ``Verifier`` that asks a panel of endpoints and counts agreeing answers.

    ``panel`` lists the endpoints consensus may ask, in order of preference; ``policy``
    prepares the request for each (without one nothing is sent: :meth:`verify` raises until
    :meth:`bind` supplies it). ``restore`` puts the conversation's placeholders back into
    each panel answer (the gate's ``Restorer.restore``), so that panel answers compare with
    the primary's restored answer; an answer it cannot restore does not vote. With a
    ``reputation``, every verified verdict updates each endpoint's agreement history, and
    endpoints whose dissent rate is at least ``exclude_above`` over at least ``min_votes``
    counted answers are not asked (abstention ``reputation``) while enough others remain.
    ``scorer`` adds evidence for the accepted answer (``WhiteBoxScorer.scorer()``).
    """

    keeps_deadline = True
    """The sync ``verify`` waits for its panel and verdict no longer than the gate stage's deadline."""

    def __init__(
        self,
        panel: Sequence[Endpoint],
        *,
        asker: Asker,
        policy: Policy | None,
        restore: Restore | None = None,
        reputation: Reputation | None = None,
        exclude_above: float | None = None,
        min_votes: int = 5,
        scorer: Scorer | None = None,
    ) -> None:
        if not panel:
            raise ConfigError("consensus needs at least one endpoint in its panel")
        ids = [e.id for e in panel]
        duplicates = sorted({e for e in ids if ids.count(e) > 1})
        if duplicates:
            raise ConfigError(f"consensus panel names endpoint(s) twice: {', '.join(duplicates)}")
        if exclude_above is not None and reputation is None:
            raise ConfigError("exclude_above needs a reputation store to read dissent rates from")
        self._panel = tuple(panel)
        self._asker = asker
        self._policy = policy
        self._restore = restore
        self._reputation = reputation
        self._exclude_above = exclude_above
        self._min_votes = min_votes
        self._scorer = scorer

    def bind(self, *, policy: Policy, restore: Restore | None = None) -> None:
        """Supply the gate's hooks after the gate is built (the gate needs its verifier first).

        Raises ``ConfigError`` when a policy is already bound: the chain is fixed once used.
        """
        if self._policy is not None:
            raise ConfigError("consensus already has a policy; it cannot be replaced")
        self._policy = policy
        if restore is not None:
            self._restore = restore

    @property
    def panel(self) -> tuple[Endpoint, ...]:
        """The endpoints consensus may ask."""
        return self._panel

    async def gather(
        self, endpoints: Sequence[Endpoint], prepare: Prepare, *, deadline: float,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Ask ``endpoints`` concurrently; return ``(answers, abstained)`` keyed by endpoint id.

        ``prepare`` runs first for every endpoint (async preparations, such as the gate's
        outbound path, run concurrently); then all permitted endpoints are asked at once
        and whatever has not answered ``deadline`` seconds later is cancelled.
        """
        if deadline <= 0:
            raise ConfigError(f"consensus deadline must be positive, got {deadline}")
        abstained: dict[str, str] = {}
        ready: list[tuple[Endpoint, Message]] = []
        outcomes = await asyncio.gather(*(self._prepare_one(prepare, e) for e in endpoints))
        for endpoint, outcome in zip(endpoints, outcomes, strict=True):
            if isinstance(outcome, Message):
                ready.append((endpoint, outcome))
            else:
                abstained[endpoint.id] = outcome
        tasks = {
            asyncio.ensure_future(self._asker.ask(endpoint, message, deadline)): endpoint.id
            for endpoint, message in ready
        }
        answers: dict[str, str] = {}
        if tasks:
            try:
                done, pending = await asyncio.wait(tasks, timeout=deadline)
            except asyncio.CancelledError:
                for task in tasks:  # whoever waits for the verdict gave up: so do the asks
                    task.cancel()
                raise
            for task in pending:
                task.cancel()
                abstained[tasks[task]] = "timeout"
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                endpoint_id = tasks[task]
                if task.cancelled():
                    abstained[endpoint_id] = "error: cancelled"
                    continue
                failure = task.exception()
                if failure is None:
                    result = task.result()
                    if isinstance(result, str):
                        answers[endpoint_id] = result
                    else:
                        abstained[endpoint_id] = "error: answer is not text"
                else:
                    abstained[endpoint_id] = _reason(failure)
        return answers, abstained

    @staticmethod
    async def _prepare_one(prepare: Prepare, endpoint: Endpoint) -> Message | str:
        """The message for one endpoint, or the reason it may not be asked (fail closed)."""
        try:
            prepared = prepare(endpoint)
            message = await prepared if inspect.isawaitable(prepared) else prepared
        except Blocked:
            return "policy"
        except Exception as exc:  # fail closed: an endpoint we cannot prepare for is not asked
            return f"policy: {type(exc).__name__}"
        if isinstance(message, Prepared):
            # The gate's Outbound says where the prepared message may go. A message prepared
            # for another recipient (a reroute) must never be sent to this one.
            if message.route.recipient.id != endpoint.id:
                return "policy: rerouted"
            message = message.message
        if message is None:
            return "policy"
        if not isinstance(message, Message):
            return "policy: not a Message"
        return message

    async def ask_async(
        self,
        prepare: Prepare,
        *,
        quorum: int,
        of: int | None = None,
        measure: Measure | str = "exact",
        threshold: float = 0.8,
        deadline: float = 30.0,
        primary: tuple[Endpoint, str] | None = None,
        request: Message | None = None,
    ) -> Verdict:
        """Fan out to the panel and return the verdict of ``quorum`` out of ``of`` endpoints.

        ``primary`` is an endpoint whose answer is already in hand: it votes without
        being asked again. ``request`` (the original, local request) is what a ``scorer``
        scores the accepted answer against.
        """
        started = time.perf_counter()
        if of is None:  # the whole panel, plus the primary when it is not one of them
            of = len(self._panel) + (1 if primary is not None and primary[0] not in self._panel else 0)
        chosen, skipped = self._choose(of - (1 if primary else 0),
                                       exclude=primary[0].id if primary else None)
        panel_ids = ([primary[0].id] if primary else []) + [e.id for e in chosen] + list(skipped)
        if len(panel_ids) < of:
            raise ConfigError(f"verification needs {of} endpoints but the consensus panel offers "
                              f"{len(panel_ids)} ({', '.join(panel_ids) or 'none'})")
        answers, abstained = await self.gather(chosen, prepare, deadline=deadline)
        abstained.update(skipped)
        if self._restore is not None and request is not None:
            answers = await asyncio.to_thread(self._restored, answers, abstained, request.conversation_id)
        if primary is not None:
            answers[primary[0].id] = primary[1]
        wall = time.perf_counter() - started
        chosen_measure = measure_for(measure) if isinstance(measure, str) else measure
        verdict = await asyncio.to_thread(
            tally, answers, panel=panel_ids, measure=chosen_measure, quorum=quorum, threshold=threshold,
            abstained=abstained, primary=primary[0].id if primary else None,
            evidence={"wall_seconds": wall},
        )
        if self._reputation is not None:
            await asyncio.to_thread(self._reputation.record_verdict, verdict)
        if self._scorer is not None and verdict.answer is not None and request is not None:
            extra = await asyncio.to_thread(self._scorer, request, verdict.answer)
            verdict = verdict.model_copy(update={"evidence": {**verdict.evidence, **extra}})
        return verdict

    def _restored(self, answers: dict[str, str], abstained: dict[str, str],
                  conversation_id: str) -> dict[str, str]:
        """Panel answers with placeholders restored; one that fails to restore abstains (fail closed)."""
        if self._restore is None:
            return answers
        out: dict[str, str] = {}
        for endpoint_id, text in answers.items():
            wrapped = Message.from_openai([{"role": "assistant", "content": text}],
                                          conversation_id=conversation_id)
            try:
                out[endpoint_id] = response_text(self._restore(wrapped))
            except Exception as exc:  # fail closed: an answer we cannot restore does not vote
                abstained[endpoint_id] = f"error: restore {type(exc).__name__}"
        return out

    def _choose(self, count: int, *, exclude: str | None) -> tuple[list[Endpoint], dict[str, str]]:
        """Up to ``count`` panel endpoints to ask, preferring those in good standing."""
        candidates = [e for e in self._panel if e.id != exclude]
        flagged: set[str] = set()
        if self._reputation is not None and self._exclude_above is not None:
            flagged = set(self._reputation.flagged(self._exclude_above, min_votes=self._min_votes))
        good = [e for e in candidates if e.id not in flagged]
        chosen = good[:count]
        skipped: dict[str, str] = {}
        for endpoint in candidates:
            if len(chosen) + len(skipped) >= count:
                break
            if endpoint.id in flagged:
                skipped[endpoint.id] = "reputation"
        return chosen, skipped

    async def verify_async(self, request: Message, response: Message, route: Route,
                           requirement: VerifyRequirement) -> Verdict:
        """The ``Verifier`` step: check the primary endpoint's ``response`` against the panel.

        The primary is ``route.recipient``; the other ``requirement.of - 1`` endpoints get the
        request as ``policy`` prepares it on the route redirected to each.
        """
        policy = self._policy
        if policy is None:
            raise ConfigError("consensus has no policy to prepare messages with; call bind(policy=...) "
                              "with the gate's outbound path first")

        def prepare(endpoint: Endpoint) -> _Ready | Awaitable[_Ready]:
            return policy(request, route.to(endpoint))

        return await self.ask_async(
            prepare, quorum=requirement.quorum, of=requirement.of, measure=requirement.measure,
            threshold=requirement.threshold, deadline=requirement.deadline,
            primary=(route.recipient, response_text(response)), request=request,
        )

    def verify(self, request: Message, response: Message, route: Route,
               requirement: VerifyRequirement) -> Verdict:
        """Synchronous twin of :meth:`verify_async`, run on a background event loop (safe inside a loop).

        In a gate stage, it raises ``DeadlineExceeded`` when the stage's deadline passes before
        the verdict is ready, and cancels the fan-out.
        """
        if stage_deadline.remaining() == 0.0:
            raise DeadlineExceeded("gave up before asking the consensus panel: the stage's deadline passed")
        return _run(lambda: self.verify_async(request, response, route, requirement))

    async def aclose(self) -> None:
        """Close the asker's connections opened on the running event loop (when it keeps any)."""
        close = getattr(self._asker, "aclose", None)
        if close is not None:
            await close()

    def close(self) -> None:
        """Close the connections the synchronous :meth:`verify` opened."""
        _run(self.aclose)


def _reason(exc: BaseException) -> str:
    """Why an endpoint gave no answer, without any content."""
    if isinstance(exc, EndpointTimeout | TimeoutError):
        return "timeout"
    if isinstance(exc, EndpointError) and exc.status is not None:
        return f"error: HTTP {exc.status}"
    return f"error: {type(exc).__name__}"


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop in a daemon thread for the sync API, so clients and their pools are reused."""
    global _loop
    stage_deadline.acquire(_loop_lock, "the verifiers' event loop (another thread is starting it)")
    try:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="trustlayer-verifiers", daemon=True).start()
            _loop = loop
        return _loop
    finally:
        _loop_lock.release()


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, on the verifiers' background event loop.

    In a gate stage with a deadline, give up when it passes: cancel the coroutine and raise
    ``DeadlineExceeded``.
    """
    loop = _background_loop()  # first: a coroutine made and then never run would warn
    # The time left is read after the loop's lock was waited for: that wait spent some of it.
    timeout = stage_deadline.remaining()
    future = asyncio.run_coroutine_threadsafe(factory(), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if not future.cancel():  # it finished meanwhile (or itself raised TimeoutError): that is the outcome
            return future.result()
        raise DeadlineExceeded("gave up waiting for the consensus panel's verdict: "
                               "the stage's deadline passed") from None
