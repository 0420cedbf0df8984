"""Consensus quality and fan-out wall time.

Quality: GSM8K-style arithmetic word problems generated from a seed, answered by SIMULATED
endpoints (no real model here can do the arithmetic): honest (95% right), noisy (85%
right) and one faulty/adversarial endpoint that gives a plausible wrong number on a share
p of its questions. Each reply is phrased in a varied format ("1,200", "#### 1200.0",
"The answer is 1200 apples.") so normalization is exercised. The real ``Consensus``
(gather -> tally, exact measure) and the real ``Reputation`` (SQLite) count the votes.

Reported for n = 3 and n = 5:
- consensus accuracy: share of questions with a verified, correct answer (unverified
  counts as no answer), against the best single endpoint's accuracy;
- per-answer detection: the faulty endpoint is named dissenting when it was wrong;
- per-answer false alarm: an endpoint with a correct answer is named dissenting;
- per-endpoint detection / false alarm: after Q questions, reputation flags an endpoint
  whose dissent rate >= the threshold (trustlayer.yaml verify.dissent_threshold = 0.3).
Target: >= 95% detection at <= 5% false alarms when the faulty endpoint is wrong on at
least half its answers.

Wall time: five real uvicorn servers on 127.0.0.1 with SIMULATED latencies; consensus
fan-out against the slowest endpoint asked alone and against asking them one by one.

Run: python benchmarks/consensus_quality.py [--trials 50] [--questions 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from trustlayer.types import Endpoint, Message
from trustlayer.verifiers import Consensus, EndpointAsker, Reputation, extract_answer, normalize

THRESHOLD = 0.3
MIN_VOTES = 20

# -- the question set -------------------------------------------------------------------

TEMPLATES: list[tuple[str, Callable[[int, int, int], int]]] = [
    ("A baker makes {a} loaves a day for {b} days and then sells {c} of them. How many loaves are left?",
     lambda a, b, c: a * b - c),
    ("Maya has {a} stickers. She buys {b} packs of {c} stickers each. How many stickers does she have now?",
     lambda a, b, c: a + b * c),
    ("A train carries {a} passengers in each of {b} cars; at the station {c} passengers get off. "
     "How many passengers remain?", lambda a, b, c: a * b - c),
    ("Tom earns ${a} per hour and works {b} hours a week. He spends ${c} a week on rent. "
     "How many dollars does he keep each week?", lambda a, b, c: a * b - c),
    ("A farm has {a} rows of {b} apple trees, and each tree gives {c} apples. How many apples does the farm get?",
     lambda a, b, c: a * b * c),
]


@dataclass(frozen=True)
class Question:
    text: str
    answer: int


def questions(n: int, seed: int) -> list[Question]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template, solve = rng.choice(TEMPLATES)
        a, b = rng.randint(12, 99), rng.randint(3, 40)
        c = rng.randint(5, a * b - 1) if "left" in template or "remain" in template or "keep" in template \
            else rng.randint(2, 30)
        out.append(Question(template.format(a=a, b=b, c=c), solve(a, b, c)))
    return out


FORMATS: list[Callable[[int], str]] = [
    lambda n: f"{n}",
    lambda n: f"{n:,}",
    lambda n: f"The answer is {n:,}.",
    lambda n: f"Let me work it out step by step.\n#### {n}.0",
    lambda n: f"Working through the numbers carefully, the final answer is {n} in total.",
    lambda n: f"Answer: {n:,}",
]


def near_miss(rng: random.Random, n: int) -> int:
    """A plausible wrong number: an arithmetic slip, never the right answer."""
    wrong = rng.choice([n + rng.randint(1, 9), n - rng.randint(1, 9), n + 10, n - 10, n * 2, n + 100])
    return wrong if wrong != n else n + 1


# -- simulated endpoints (an Asker that answers from a profile; SIMULATED) ------------------

@dataclass(frozen=True)
class Profile:
    name: str
    accuracy: float


class SimulatedAsker:
    """SIMULATED endpoints: right with probability ``accuracy`` per question, else a near miss."""

    def __init__(self, profiles: dict[str, Profile], answers: dict[str, int], seed: int) -> None:
        self.profiles, self.answers, self.seed = profiles, answers, seed
        self.given: dict[tuple[str, str], int] = {}

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        text = message.to_openai()[-1]["content"]
        truth = self.answers[text]
        rng = random.Random(f"{self.seed}|{endpoint.id}|{text}")
        right = rng.random() < self.profiles[endpoint.id].accuracy
        value = truth if right else near_miss(rng, truth)
        self.given[(endpoint.id, text)] = value
        return rng.choice(FORMATS)(value)


@dataclass
class Tally:
    questions: int = 0
    consensus_right: int = 0
    verified: int = 0
    faulty_wrong: int = 0
    faulty_named: int = 0
    correct_answers: int = 0
    correct_named: int = 0
    flagged_faulty: int = 0
    trials: int = 0
    flagged_other: int = 0
    others: int = 0
    single_right: dict[str, int] | None = None


async def run_trial(profiles: list[Profile], qs: list[Question], seed: int, t: Tally) -> None:
    panel = [Endpoint(id=p.name, kind="cloud", jurisdiction="US") for p in profiles]
    answers = {q.text: q.answer for q in qs}
    asker = SimulatedAsker({p.name: p for p in profiles}, answers, seed)
    reputation = Reputation.open(":memory:")
    consensus = Consensus(panel, asker=asker, policy=lambda m, r: m, reputation=reputation)
    quorum = len(panel) // 2 + 1
    t.single_right = t.single_right or {p.name: 0 for p in profiles}
    for q in qs:
        message = Message.from_text(q.text, conversation_id="bench")
        v = await consensus.ask_async(lambda ep, m=message: m, quorum=quorum, deadline=5)
        t.questions += 1
        if v.verified:
            t.verified += 1
            if normalize(extract_answer(v.answer or "")) == str(q.answer):
                t.consensus_right += 1
        for p in profiles:
            right = asker.given[(p.name, q.text)] == q.answer
            t.single_right[p.name] += right
            named = p.name in v.dissenting
            if p.name == "faulty" and not right:
                t.faulty_wrong += 1
                t.faulty_named += named
            if right:
                t.correct_answers += 1
                t.correct_named += named
    flagged = set(reputation.flagged(THRESHOLD, min_votes=MIN_VOTES))
    t.trials += 1
    t.flagged_faulty += "faulty" in flagged
    t.others += len(profiles) - 1
    t.flagged_other += len(flagged - {"faulty"})


def panel_for(n: int, p_wrong: float) -> list[Profile]:
    honest = [Profile(f"honest{i}", 0.95) for i in range(1, 3 if n == 5 else 2)]
    noisy = [Profile(f"noisy{i}", 0.85) for i in range(1, 3 if n == 5 else 2)]
    return [*honest, *noisy, Profile("faulty", 1.0 - p_wrong)]


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   - "


async def quality(trials: int, n_questions: int) -> list[bool]:
    print(f"QUALITY (SIMULATED endpoints; {trials} trials x {n_questions} generated questions per row; "
          f"quorum = majority; flag when dissent rate >= {THRESHOLD} over >= {MIN_VOTES} votes)")
    print("honest = 95% right, noisy = 85% right, faulty = wrong on a share p of questions "
          "(plausible near-miss numbers)")
    header = (f"{'n':>2} {'p':>5} | {'consensus':>9} {'verified':>8} {'best1':>6} {'ratio':>5} | {'detect/ans':>10} "
              f"{'false/ans':>9} | {'detect/ep':>9} {'false/ep':>8} | target")
    print(header)
    print("-" * len(header))
    met: list[bool] = []
    for n in (3, 5):
        for p_wrong in (0.3, 0.5, 0.75, 1.0):
            t = Tally()
            for trial in range(trials):
                qs = questions(n_questions, seed=1000 * trial + n)
                await run_trial(panel_for(n, p_wrong), qs, seed=trial, t=t)
            assert t.single_right is not None
            best = max(t.single_right.values())
            detect, false_ep = t.flagged_faulty / t.trials, t.flagged_other / t.others
            in_scope = p_wrong >= 0.5
            ok = detect >= 0.95 and false_ep <= 0.05
            if in_scope:
                met.append(ok)
            verdict = ("MET" if ok else "MISSED") if in_scope else "(p < 0.5: outside target)"
            print(f"{n:>2} {p_wrong:>5.2f} | {pct(t.consensus_right, t.questions):>9} "
                  f"{pct(t.verified, t.questions):>8} {pct(best, t.questions):>6} "
                  f"{t.consensus_right / best:5.2f} | "
                  f"{pct(t.faulty_named, t.faulty_wrong):>10} {pct(t.correct_named, t.correct_answers):>9} | "
                  f"{pct(t.flagged_faulty, t.trials):>9} {pct(t.flagged_other, t.others):>8} | {verdict}")
    print("consensus = verified and correct; best1 = accuracy of the best single endpoint on the same "
          "questions; ratio = consensus / best1;\ndetect/ans = faulty named dissenting when wrong; false/ans = "
          "an endpoint named dissenting although right;\ndetect/ep, false/ep = flagged by reputation after "
          "each trial (faulty / any other endpoint).")
    return met


# -- fan-out wall time over real loopback servers (latencies SIMULATED) ---------------------

def start_server(delay: float) -> tuple[uvicorn.Server, threading.Thread, str]:
    async def complete(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        await asyncio.sleep(delay)
        return JSONResponse({"object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42"}}]})

    app = Starlette(routes=[StarletteRoute("/v1/chat/completions", complete, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def wall_time(repeats: int) -> float:
    delays = [0.05, 0.10, 0.20, 0.30, 0.40]
    started = [start_server(d) for d in delays]
    while not all(s.started for s, _, _ in started):
        await asyncio.sleep(0.02)
    try:
        panel = [Endpoint(id=f"e{i}", kind="cloud", jurisdiction="US", url=url, model="m")
                 for i, (_, _, url) in enumerate(started)]
        asker = EndpointAsker()
        consensus = Consensus(panel, asker=asker, policy=lambda m, r: m)
        message = Message.from_text("What is 6 x 7?", conversation_id="bench")
        fan, alone, serial = [], [], []
        # Warm-up: open each endpoint's connection pool once (kept per event loop by the asker).
        await consensus.ask_async(lambda ep: message, quorum=3, deadline=10)
        for _ in range(repeats):
            t0 = time.perf_counter()
            v = await consensus.ask_async(lambda ep: message, quorum=3, deadline=10)
            fan.append(time.perf_counter() - t0)
            if not v.verified:
                raise RuntimeError("wall-time benchmark: consensus was not verified")
            t0 = time.perf_counter()
            await asker.ask(panel[-1], message, 10)
            alone.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for ep in panel:
                await asker.ask(ep, message, 10)
            serial.append(time.perf_counter() - t0)
        await consensus.aclose()
    finally:
        for server, _, _ in started:
            server.should_exit = True
        for _, thread, _ in started:
            thread.join(timeout=10)
    f, a, s = statistics.median(fan), statistics.median(alone), statistics.median(serial)
    print()
    print(f"WALL TIME (5 real uvicorn servers on 127.0.0.1, SIMULATED latencies {delays} s; "
          f"median of {repeats}; host load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print(f"  consensus fan-out, 5 endpoints : {1000 * f:7.1f} ms")
    print(f"  slowest endpoint alone         : {1000 * a:7.1f} ms   ratio fan-out/slowest = {f / a:.2f}")
    print(f"  the 5 endpoints one by one     : {1000 * s:7.1f} ms   ratio fan-out/serial  = {f / s:.2f}")
    return f / a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    met = asyncio.run(quality(args.trials, args.questions))
    ratio = asyncio.run(wall_time(args.repeats))
    print()
    print(f"TARGET detection >= 95% at false alarms <= 5% (p >= 0.5): "
          f"{'MET' if all(met) else 'MISSED'} in {sum(met)}/{len(met)} rows")
    print(f"TARGET wall time ~ slowest endpoint: ratio {ratio:.2f} ({'MET' if ratio < 1.25 else 'MISSED'}, "
          "threshold 1.25)")


if __name__ == "__main__":
    main()
