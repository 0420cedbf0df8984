"""The gate machinery's own added latency per message, with trivial stages.

A function guarded with ``@guard`` (outbound + inbound, trivial stages that do no work)
against the same function called directly, in one run. Two modes: per-stage timeouts on
(the default: one worker-thread hand-off per path, so a hung stage can be abandoned) and
off (stages run inline). Target: under 50 µs p50 added.

    python benchmarks/gate_overhead.py [--n 20000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

from trustlayer import guard
from trustlayer.gate import DEFAULT_TIMEOUTS, Gate
from trustlayer.layer import TrustLayer
from trustlayer.stages import Signed
from trustlayer.types import Decision, Endpoint, Finding, Hop, Message, Operator, Outcome, Route

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


def measure(fn: Callable[[str], str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn("hello there")
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    direct = measure(llm, n)
    d50, d99 = pct(direct, 50), pct(direct, 99)
    print(f"direct call:                 p50 {d50:7.1f} µs  p99 {d99:7.1f} µs")
    for timeouts in (False, True):
        guarded = guard(to="cloud", layer=layer(timeouts))(llm)
        measure(guarded, 500)  # warm up
        xs = measure(guarded, n)
        p50, p99 = pct(xs, 50), pct(xs, 99)
        mode = "timeouts on (watchdog)" if timeouts else "timeouts off (inline) "
        print(f"@guard, {mode}: p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  -> added p50 {p50 - d50:7.1f} µs "
              f"({p50 / max(d50, 1e-3):.0f}x the direct call), added p99 {p99 - d99:7.1f} µs; target < 50 µs p50")


if __name__ == "__main__":
    main()
