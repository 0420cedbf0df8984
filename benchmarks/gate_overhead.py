"""The gate machinery's own added latency per message, with trivial stages.

A function guarded with ``@guard`` (outbound + inbound, trivial stages that do no work)
against the same function called directly, in one run. Three modes:

- ``deadline``: per-stage timeouts on (the default), every stage keeps its deadline
  (``keeps_deadline = True``, as every built-in stage does): paths run in the caller's
  thread, each stage's deadline set and checked. This is what ``trustlayer init``'s
  config runs, and the mode the target is judged on.
- ``watchdog``: timeouts on, but one stage does not declare that it keeps its deadline
  (a user's own stage): one worker-thread hand-off per path, so a hung stage can be abandoned.
- ``inline``: timeouts off.

Target: under 50 µs p50 added per message.

    python benchmarks/gate_overhead.py [--n 20000] [--rounds 10]

The modes take turns in rounds so that a load change on a shared machine hits them
alike; it also prints each path alone (``gate.outbound``, ``gate.inbound``).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from trustlayer import _workers, guard
from trustlayer.gate import DEFAULT_TIMEOUTS, Gate
from trustlayer.layer import TrustLayer
from trustlayer.stages import Signed
from trustlayer.types import Decision, Endpoint, Finding, Hop, Message, Operator, Outcome, Route

TARGET_US = 50.0
DEVICE = Endpoint(id="phone", kind="device", jurisdiction="DE")
CLOUD = Endpoint(id="cloud", kind="cloud", jurisdiction="US")
ALLOW = Decision(id="d", outcome=Outcome.ALLOW, endpoint="cloud", allowed=("cloud",))
SIGNED = Signed(envelope=b"{}", digest="0" * 64)


class Trivial:
    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        return []

    def entities_for(self, route: Route) -> frozenset[str] | None:
        return None

    def decide(self, findings: Sequence[Finding], route: Route, **kw: object) -> Decision:
        return ALLOW

    def transform(self, message: Message, findings: Sequence[Finding], operators: Mapping[str, Operator]) -> Message:
        return message

    def restore(self, message: Message) -> Message:
        return message

    def stream(self, conversation_id: str) -> object:
        raise NotImplementedError

    def sign(self, hop: Hop) -> Signed:
        return SIGNED

    def record(self, envelope: bytes) -> int:
        return 0


class Keeping(Trivial):
    """Trivial stages that declare they keep their deadlines (they never wait on anything)."""

    keeps_deadline = True


MODES = ("deadline", "watchdog", "inline")


def layer(mode: str) -> TrustLayer:
    t = Keeping() if mode == "deadline" else Trivial()
    gate = Gate(detector=t, decider=t, transformer=t, restorer=t, signer=t, recorder=t,  # type: ignore[arg-type]
                endpoints=(DEVICE, CLOUD),
                timeouts={k: None for k in DEFAULT_TIMEOUTS} if mode == "inline" else None)
    return TrustLayer(gate=gate, me=DEVICE, endpoints=[CLOUD], secret=b"b" * 32)


def llm(prompt: str) -> str:
    return "ok"


def measure(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def _handoff() -> None:
    done = threading.Lock()
    done.acquire()
    _workers.start(done.release)
    done.acquire()


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="calls per mode")
    ap.add_argument("--rounds", type=int, default=10, help="the modes take turns this many times (fair under load)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, load average at start {load:.2f}")
    layers = {mode: layer(mode) for mode in MODES}
    message = Message.from_text("hello there", conversation_id="cv-bench")
    route = layers["inline"].route_to("cloud")
    out = layers["inline"].gate.outbound(message, route)
    modes: dict[str, Callable[[], object]] = {"direct call": lambda: llm("hello there")}
    for mode, tl in layers.items():
        modes[f"@guard, {mode}"] = functools.partial(guard(to="cloud", layer=tl)(llm), "hello there")
    for mode, tl in layers.items():
        g = tl.gate
        modes[f"gate.outbound, {mode}"] = functools.partial(g.outbound, message, route)
        modes[f"gate.inbound, {mode}"] = functools.partial(g.inbound, message, route, request=out)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for fn in modes.values():
        measure(fn, 500)  # warm up
    per_round = max(1, args.n // args.rounds)
    for _ in range(args.rounds):
        for name, fn in modes.items():
            samples[name] += measure(fn, per_round)
    d50 = pct(samples["direct call"], 50)
    print(f"{per_round * args.rounds} calls per mode, in {args.rounds} interleaved rounds; times in µs")
    print(f"{'':32s} {'p50':>7s} {'p99':>7s}   added p50 (vs direct)")
    for name, xs in samples.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        extra = "" if name == "direct call" else f"   {p50 - d50:7.1f}"
        print(f"{name:32s} {p50:7.1f} {p99:7.1f}{extra}")
    added = {name: pct(xs, 50) - d50 for name, xs in samples.items()}
    print(f"target < {TARGET_US:.0f} µs p50 added per message. A guarded call gates two messages (its prompt out, "
          "its answer back),\nso a message's share is half the call's added time; each path alone is shown too, "
          "and the larger counts.")
    for mode in MODES:
        call = added[f"@guard, {mode}"]
        out_us, back = added[f"gate.outbound, {mode}"], added[f"gate.inbound, {mode}"]
        per_message = max(call / 2, out_us, back)
        verdict = "MET" if per_message < TARGET_US else "MISSED"
        judged = "  <- the default (built-in stages)" if mode == "deadline" else ""
        print(f"  {mode:8s} per message {per_message:5.1f} µs (call +{call:.1f} / 2 = {call / 2:.1f}; outbound "
              f"{out_us:.1f}, inbound {back:.1f}) -> {verdict} (ratio to target {per_message / TARGET_US:.2f}){judged}")
    floor = pct(measure(_handoff, 5000), 50)
    print(f"per guarded call (two messages): deadline +{added['@guard, deadline']:.1f} µs, inline "
          f"+{added['@guard, inline']:.1f} µs, watchdog +{added['@guard, watchdog']:.1f} µs; the watchdog's floor "
          f"is one thread hand-off per path (a bare round trip to a worker and back: {floor:.1f} µs here)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
