"""Audit log throughput: signed records appended per second with group commit, and verify time.

    python benchmarks/audit_throughput.py [--records 20000] [--verify-entries 100000] [--threads 64]

Runs pinned to one CPU core (``sched_setaffinity``). Three measurements, in one run:

1. **sign + append with group commit**: ``--threads`` threads (the gate serving concurrent
   requests) each sign hop records with ``trustlayer.provenance.signer.RecordSigner`` and
   ``record`` them in ``SQLiteStore`` (WAL, synchronous=FULL, checkpoint every 256 entries);
   the same with ``--threads`` asyncio tasks awaiting ``record_async`` (the async gate and
   proxy); the same with ``--batch-threads`` threads that each sign ``--per-call`` records
   and append them with one ``record_many`` (every record still signed on its own and its
   own entry; one submission and one wake-up per call instead of per record; durable when
   the call returns); and the append alone, with the same records signed beforehand.
2. **reference: plain SQLite inserts of the same bytes**: one ``INSERT`` + ``COMMIT`` per
   record from one thread, same file settings (WAL, synchronous=FULL), no hashing, no
   checkpoints: what a naive logger does. (Also printed: one bulk transaction, the bound
   for any per-record-durable scheme.)
3. **``audit verify`` of ``--verify-entries`` entries**: ``verify_log`` over a log of that size
   (every Ed25519 signature, record parse, tree recompute, checkpoints), timed end to end.

Targets (issue 5): >= 10,000 signed records/s on one core; verify of 100,000 entries < 30 s.
Measurements of (1) and (2) run interleaved in rounds (best round counts) so load from other
processes on the shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.verify import verify_log
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.signer import RecordSigner
from trustlayer.types import Decision, Endpoint, Hop, Operator, Outcome, Route

APPEND_TARGET = 10_000
VERIFY_TARGET_S = 30.0
SALT = os.urandom(32)


def _hops(n: int) -> list[Hop]:
    phone = Endpoint(id="phone", kind="device", jurisdiction="DE")
    cloud = Endpoint(id="gpt", kind="cloud", jurisdiction="US")
    decision = Decision(id="d" * 32, outcome=Outcome.TRANSFORM, endpoint="gpt", rule_ids=("eu-only", "pii-min"),
                        operators={"EMAIL_ADDRESS": Operator.PSEUDONYMIZE, "PERSON": Operator.PSEUDONYMIZE})
    route = Route.between(phone, cloud)
    return [Hop(direction="outbound", route=route, conversation_id=f"conv-{i % 500:04d}", content=os.urandom(512),
                decision=decision, entity_counts={"EMAIL_ADDRESS": 1, "PERSON": 2}, model="gpt-4o-mini")
            for i in range(n)]


def _threads(n_threads: int, work: list[list[Hop]] | list[list[bytes]], fn: object) -> tuple[float, float]:
    """Run ``fn(chunk)`` in one thread per chunk; return (wall seconds, CPU seconds of this process)."""
    threads = [threading.Thread(target=fn, args=(chunk,)) for chunk in work]  # type: ignore[arg-type]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, time.process_time() - c0


def sign_and_append(db: Path, signer: RecordSigner, log_key: SigningKey, hops: list[Hop],
                    n_threads: int) -> tuple[float, float]:
    """(records per wall second, records per CPU second)."""
    with SQLiteStore(db, log_key=log_key) as store:
        def work(chunk: list[Hop]) -> None:
            for hop in chunk:
                store.record(signer.sign(hop).envelope)

        wall, cpu = _threads(n_threads, [hops[i::n_threads] for i in range(n_threads)], work)
    return len(hops) / wall, len(hops) / cpu


def sign_and_append_many(db: Path, signer: RecordSigner, log_key: SigningKey, hops: list[Hop], n_threads: int,
                         per_call: int) -> tuple[float, float]:
    """Each thread signs ``per_call`` hops, then appends them with one ``record_many`` (durable on return)."""
    with SQLiteStore(db, log_key=log_key) as store:
        def work(chunk: list[Hop]) -> None:
            for i in range(0, len(chunk), per_call):
                store.record_many([signer.sign(hop).envelope for hop in chunk[i:i + per_call]])

        wall, cpu = _threads(n_threads, [hops[i::n_threads] for i in range(n_threads)], work)
    return len(hops) / wall, len(hops) / cpu


def sign_and_append_async(db: Path, signer: RecordSigner, log_key: SigningKey, hops: list[Hop],
                          in_flight: int) -> tuple[float, float]:
    """The async gate's path: sign, then ``await record_async``, ``in_flight`` requests at a time."""
    import asyncio

    with SQLiteStore(db, log_key=log_key) as store:
        async def main() -> None:
            gate = asyncio.Semaphore(in_flight)

            async def one(hop: Hop) -> None:
                async with gate:
                    await store.record_async(signer.sign(hop).envelope)

            await asyncio.gather(*(one(h) for h in hops))

        t0, c0 = time.perf_counter(), time.process_time()
        asyncio.run(main())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(hops) / wall, len(hops) / cpu


def append_only(db: Path, log_key: SigningKey, envelopes: list[bytes], n_threads: int) -> tuple[float, float]:
    with SQLiteStore(db, log_key=log_key) as store:
        def work(chunk: list[bytes]) -> None:
            for env in chunk:
                store.record(env)

        wall, cpu = _threads(n_threads, [envelopes[i::n_threads] for i in range(n_threads)], work)
    return len(envelopes) / wall, len(envelopes) / cpu


def _plain(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, envelope BLOB NOT NULL)")
    return conn


def plain_inserts(db: Path, envelopes: list[bytes]) -> tuple[float, float]:
    conn = _plain(db)
    t0, c0 = time.perf_counter(), time.process_time()
    for env in envelopes:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO log (envelope) VALUES (?)", (env,))
        conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    return len(envelopes) / wall, len(envelopes) / cpu


def plain_bulk(db: Path, envelopes: list[bytes]) -> float:
    conn = _plain(db)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO log (envelope) VALUES (?)", [(e,) for e in envelopes])
    conn.execute("COMMIT")
    rate = len(envelopes) / (time.perf_counter() - t0)
    conn.close()
    return rate


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--verify-entries", type=int, default=100_000, help="0 skips the verify measurement")
    parser.add_argument("--threads", type=int, default=64,
                        help="concurrent writers (requests in flight in the gate); group commit batches them")
    parser.add_argument("--batch-threads", type=int, default=16,
                        help="threads of the record_many measurement")
    parser.add_argument("--per-call", type=int, default=16, help="records signed and appended per record_many call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if all_cpus:
        os.sched_setaffinity(0, {min(all_cpus)})
        cores = f"appends pinned to 1 core (cpu {min(all_cpus)}) of {len(all_cpus)}"
    else:
        cores = "not pinned (no sched_setaffinity)"

    key, log_key = SigningKey.generate(), SigningKey.generate()
    signer = RecordSigner(key, salt=SALT, state_path=None)
    per_round = args.records // args.rounds
    print(f"audit throughput — python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {cores}")
    print(f"{args.records} hop records of ~1.2 KB envelope, {args.threads} writer threads, {args.rounds} rounds")
    print(f"machine load average at start: {_load()} (the 2 cores are shared; wall-clock figures depend on it)")

    best = {"sign+append": 0.0, "many": 0.0, "async": 0.0, "append": 0.0, "plain": 0.0, "bulk": 0.0}
    cpu_best = {"sign+append": 0.0, "many": 0.0, "async": 0.0, "append": 0.0, "plain": 0.0}

    def keep(name: str, rates: tuple[float, float]) -> None:
        best[name] = max(best[name], rates[0])
        cpu_best[name] = max(cpu_best[name], rates[1])

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        d = Path(tmp)
        for r in range(args.rounds):
            hops = _hops(per_round)
            envelopes = [signer.sign(h).envelope for h in hops]
            keep("sign+append", sign_and_append(d / f"sa{r}.db", signer, log_key, hops, args.threads))
            keep("many", sign_and_append_many(d / f"sm{r}.db", signer, log_key, _hops(per_round), args.batch_threads,
                                              args.per_call))
            keep("async", sign_and_append_async(d / f"as{r}.db", signer, log_key, _hops(per_round), args.threads))
            keep("append", append_only(d / f"a{r}.db", log_key, envelopes, args.threads))
            keep("plain", plain_inserts(d / f"p{r}.db", envelopes))
            best["bulk"] = max(best["bulk"], plain_bulk(d / f"b{r}.db", envelopes))
        size = (d / "sa0.db").stat().st_size + (d / "sa0.db-wal").stat().st_size \
            if (d / "sa0.db-wal").exists() else (d / "sa0.db").stat().st_size
        print(f"  (one round's log file: {size / per_round:.0f} bytes per entry incl. leaf hash and checkpoints)")

        print()
        print("                                 wall-clock     per CPU-second of this process")
        met = "MET" if best["sign+append"] >= APPEND_TARGET else "MISSED"
        print(f"sign + append, group commit      {best['sign+append']:>10,.0f} /s  "
              f"{cpu_best['sign+append']:>10,.0f} /s   target >= {APPEND_TARGET:,}: {met} (wall)")
        met_many = "MET" if best["many"] >= APPEND_TARGET else "MISSED"
        label = f"sign + record_many ({args.per_call} per call)"
        print(f"{label:<32} {best['many']:>10,.0f} /s  {cpu_best['many']:>10,.0f} /s   target: {met_many} "
              f"(wall; {args.batch_threads} threads, each signs {args.per_call} records, "
              "then one record_many)")
        print(f"sign + record_async (asyncio)    {best['async']:>10,.0f} /s  {cpu_best['async']:>10,.0f} /s   "
              f"({args.threads} requests in flight on one event loop)")
        print(f"append only (pre-signed)         {best['append']:>10,.0f} /s  {cpu_best['append']:>10,.0f} /s")
        print(f"reference: plain SQLite insert   {best['plain']:>10,.0f} /s  {cpu_best['plain']:>10,.0f} /s   "
              "(1 INSERT+COMMIT each, WAL, synchronous=FULL)")
        print(f"bound: one bulk transaction      {best['bulk']:>10,.0f} records/s   (not durable per record)")
        hops = _hops(2000)
        c0 = time.process_time()
        for h in hops:
            signer.sign(h)
        sign_cpu = (time.process_time() - c0) / len(hops)
        print(f"floor: RecordSigner.sign alone   {1 / sign_cpu:>10,.0f} /s per CPU-second "
              f"({sign_cpu * 1e6:.0f} us/record: "
              "statement, canonical JSON, Ed25519, digest)")
        store_cpu = 1 / cpu_best["sign+append"] - sign_cpu
        print(f"store + group commit overhead    {store_cpu * 1e6:>10.0f} us CPU per record (sign+append minus sign)")
        print(f"ratio sign+append / plain insert {best['sign+append'] / best['plain']:>10.2f}x")
        print(f"ratio sign+record_many / plain   {best['many'] / best['plain']:>10.2f}x")
        print(f"ratio append only / plain insert {best['append'] / best['plain']:>10.2f}x")

        # --- verify 100k -----------------------------------------------------------------
        n = args.verify_entries
        if n <= 0:  # --verify-entries 0: the append figures only
            print(f"machine load average at the end: {_load()}")
            return
        print()
        print(f"building a log of {n:,} signed entries for verify ... (load average {_load()})", flush=True)
        t0 = time.perf_counter()
        hops = _hops(min(n, 2000))
        db = d / "verify.db"
        with SQLiteStore(db, log_key=log_key) as store:
            def work(chunk: list[Hop]) -> None:
                for hop in chunk:
                    store.record(signer.sign(hop).envelope)

            per_thread = [[hops[(i * 7 + t) % len(hops)] for i in range(t, n, args.threads)]
                          for t in range(args.threads)]
            _threads(args.threads, per_thread, work)
        print(f"  built in {time.perf_counter() - t0:.1f} s")
        ring = Keyring()
        ring.add(key.public, owner="phone")
        ring.add(log_key.public, owner="log")
        if all_cpus:
            os.sched_setaffinity(0, all_cpus)  # verify may use every core; the workers inherit this
        for label, workers in (("1 process", 1), (f"{len(all_cpus) or os.cpu_count()} processes", None)):
            with SQLiteStore(db) as store:
                t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                report = verify_log(store, record_keys=ring, log_keys=ring, workers=workers)
                elapsed = time.perf_counter() - t0
                cpu = time.process_time() - c0 + _children_cpu() - k0
            assert report.ok and report.size == n, report.problems[:3]
            idle = cpu / (workers or len(all_cpus) or 1)
            print(f"  CPU time of verify (incl. workers): {cpu:.1f} s = {cpu / n * 1e6:.0f} us per entry; "
                  f"on an otherwise idle machine about {idle:.1f} s wall")
            met = "MET" if elapsed < VERIFY_TARGET_S else "MISSED"
            print(f"audit verify, {n:,} entries, {label:<12} {elapsed:>6.1f} s   ({n / elapsed:,.0f} entries/s, "
                  f"{report.checkpoints} checkpoints)   target < {VERIFY_TARGET_S:.0f} s: {met}  "
                  f"(ratio to target {elapsed / VERIFY_TARGET_S:.2f})")
        print(f"machine load average at the end: {_load()}")


if __name__ == "__main__":
    main()
