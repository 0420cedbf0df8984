"""The gate machinery's own added latency per message, with trivial stages.

A function guarded with ``@guard`` (outbound + inbound, trivial stages that do no work)
against the same function called directly, in one run. Two modes: per-stage timeouts on
(the default: one worker-thread hand-off per path, so a hung stage can be abandoned) and
off (stages run inline). Target: under 50 µs p50 added.

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


def layer(timeouts: bool) -> TrustLayer:
    t = Trivial()
    gate = Gate(detector=t, decider=t, transformer=t, restorer=t, signer=t, recorder=t,  # type: ignore[arg-type]
                endpoints=(DEVICE, CLOUD),
                timeouts=None if timeouts else {k: None for k in DEFAULT_TIMEOUTS})
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
    inline, watched = layer(timeouts=False), layer(timeouts=True)
    message = Message.from_text("hello there", conversation_id="cv-bench")
    route = inline.route_to("cloud")
    out = inline.gate.outbound(message, route)
    modes: dict[str, Callable[[], object]] = {
        "direct call": lambda: llm("hello there"),
        "@guard, timeouts off (inline)": functools.partial(guard(to="cloud", layer=inline)(llm), "hello there"),
        "@guard, timeouts on (watchdog)": functools.partial(guard(to="cloud", layer=watched)(llm), "hello there"),
        "gate.outbound, inline": lambda: inline.gate.outbound(message, route),
        "gate.inbound, inline": lambda: inline.gate.inbound(message, route, request=out),
        "gate.outbound, watchdog": lambda: watched.gate.outbound(message, route),
        "gate.inbound, watchdog": lambda: watched.gate.inbound(message, route, request=out),
    }
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
    for mode in ("inline", "watchdog"):
        call = added[f"@guard, timeouts {'off' if mode == 'inline' else 'on'} ({mode})"]
        out, back = added[f"gate.outbound, {mode}"], added[f"gate.inbound, {mode}"]
        per_message = max(call / 2, out, back)
        verdict = "MET" if per_message < TARGET_US else "MISSED"
        print(f"  timeouts {'off' if mode == 'inline' else 'on '} ({mode:8s}) per message {per_message:5.1f} µs "
              f"(call +{call:.1f} / 2 = {call / 2:.1f}; outbound {out:.1f}, inbound {back:.1f}) -> {verdict} "
              f"(ratio to target {per_message / TARGET_US:.2f})")
    floor = pct(measure(_handoff, 5000), 50)
    print(f"per guarded call (two messages): inline +{added['@guard, timeouts off (inline)']:.1f} µs, watchdog "
          f"+{added['@guard, timeouts on (watchdog)']:.1f} µs; the watchdog's floor is one thread hand-off per "
          f"path (a bare round trip to a worker and back: {floor:.1f} µs here)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
