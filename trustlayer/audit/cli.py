"""``trustlayer audit``: verify and review the signed audit log.

    trustlayer audit verify .trustlayer/audit.db --config trustlayer.yaml
    trustlayer audit search audit.db --conversation c-42 --trust phone.pub
    trustlayer audit prove audit.db 17

``DB`` is a SQLite file path or a store URL (``sqlite:///...``, ``postgresql://...``).
Trusted keys come from ``--config`` and ``--trust`` (see ``trustlayer.audit.trust``);
without either, the keys stored in the log are used with a warning (trust on first use).
Exit codes: 0 ok, 1 the log does not verify (or a proof fails), 2 usage or input error.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console

from trustlayer.audit import _render
from trustlayer.audit._sql import SQLLogStore
from trustlayer.audit.checkpoint import Checkpoint, load_checkpoint_file, open_checkpoint
from trustlayer.audit.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from trustlayer.audit.record_view import RecordView, read_record
from trustlayer.audit.store import open_store
from trustlayer.audit.trust import TOFU_WARNING, Trust, resolve_trust
from trustlayer.audit.verify import verify_log
from trustlayer.errors import ConfigError, SignatureError, TrustError

__all__ = ["audit"]

P = ParamSpec("P")
R = TypeVar("R")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map our errors to one line and an exit code: input problems 2, anything found wrong 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except TrustError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


@contextmanager
def _open(db: str) -> Iterator[SQLLogStore]:
    if "://" not in db:
        if not Path(db).is_file():
            raise ConfigError(f"audit log {db!r} does not exist or is not a file", path=db)
        with Path(db).open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise ConfigError(f"audit log {db!r} is not a SQLite database", path=db)
        db = f"sqlite:///{db}"
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def _trust(store: SQLLogStore, config: Path | None, trust: tuple[Path, ...]) -> Trust:
    t = resolve_trust(store, config=config, trust_files=trust)
    if t.tofu:
        _err.print(f"[yellow]{TOFU_WARNING}[/yellow]")
    return t


_db = click.argument("db")
_config = click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                       help="trustlayer.yaml: trust its identity, peer and log keys.")
_trust_opt = click.option("--trust", "trust", multiple=True,
                          type=click.Path(exists=True, dir_okay=False, path_type=Path),
                          help="A public key file to trust for records and checkpoints (repeatable).")


@click.group("audit", context_settings={"help_option_names": ["-h", "--help"]})
def audit() -> None:
    """Verify and review the signed audit log.

    DB is a SQLite file or a store URL (postgresql://...). Trusted keys: --config
    trustlayer.yaml (identity, peer and endpoint keys; the log key is audit.log_key or
    the identity key) and/or --trust KEYFILE (repeatable). Without either, the keys
    stored in the log are trusted on first use, with a warning.

    Exit codes: 0 ok, 1 the log does not verify or a proof fails, 2 usage or input error.
    """


@audit.command("verify")
@_db
@_config
@_trust_opt
@click.option("--checkpoint", "saved", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint saved earlier (audit checkpoint --out): detects truncation and forks.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_errors
def verify_cmd(db: str, config: Path | None, trust: tuple[Path, ...], saved: tuple[Path, ...], as_json: bool) -> None:
    """Recompute the tree, check every signature, sequence and checkpoint; exit 1 if tampered."""
    saved_envelopes = [_read_saved(p) for p in saved]
    with _open(db) as store:
        t = _trust(store, config, trust)
        total = store.size()
        with _err.status(f"verifying {total} entries...") as status:
            report = verify_log(store, record_keys=t.records, log_keys=t.log, saved=saved_envelopes,
                                progress=lambda n: status.update(f"verified {n}/{total} entries"))
    if as_json:
        click.echo(json.dumps({
            "ok": report.ok, "size": report.size, "root": report.root.hex(), "checkpoints": report.checkpoints,
            "trust": t.source, "warnings": report.warnings,
            "problems": [{"kind": p.kind, "index": p.index, "message": p.message} for p in report.problems],
        }, indent=2))
    else:
        for line in _render.report_lines(report):
            _out.print(line, markup=False)
    sys.exit(0 if report.ok else 1)


def _read_saved(path: Path) -> bytes:
    try:
        return load_checkpoint_file(path)
    except TrustError as exc:
        raise ConfigError(str(exc), path=str(path)) from exc


def _view(envelope: bytes, t: Trust) -> tuple[RecordView | None, str | None]:
    try:
        return read_record(envelope, t.records), None
    except SignatureError as exc:
        return None, str(exc)


@audit.command("show")
@_db
@click.argument("index", type=int)
@_config
@_trust_opt
@_errors
def show_cmd(db: str, index: int, config: Path | None, trust: tuple[Path, ...]) -> None:
    """Show one entry: its verified record, digest, leaf hash and signer."""
    with _open(db) as store:
        t = _trust(store, config, trust)
        entry = store.entry(index)
    view, problem = _view(entry.envelope, t)
    _out.print(f"entry {entry.index}: {len(entry.envelope)} bytes, leaf hash {entry.leaf_hash.hex()}")
    if view is None:
        _out.print(f"[red]UNVERIFIED[/red]: {problem}")
        sys.exit(1)
    payload = json.loads(base64.b64decode(json.loads(entry.envelope)["payload"]))
    _out.print(f"record {view.digest}, signed by key {view.key_id[:16]} (owner "
               f"{t.records.owner_of(view.key_id) or 'unknown'}), sequence {view.sequence}")
    _out.print_json(json.dumps(payload))


@audit.command("tail")
@_db
@click.option("-n", "count", type=click.IntRange(1), default=20, show_default=True, help="How many entries.")
@_config
@_trust_opt
@_errors
def tail_cmd(db: str, count: int, config: Path | None, trust: tuple[Path, ...]) -> None:
    """The last entries of the log, verified, as a table."""
    with _open(db) as store:
        t = _trust(store, config, trust)
        size = store.size()
        rows = [(e.index, *_view(e.envelope, t)) for e in store.entries(max(0, size - count))]
    _out.print(_render.entries_table(rows, f"last {len(rows)} of {size} entries"))


def _epoch_ms(value: str | None, name: str) -> int | None:
    """A time option (unix seconds or ISO 8601) as Unix milliseconds, the record time format."""
    if value is None:
        return None
    import datetime as dt

    try:
        if value.isdigit():
            return int(value) * 1000
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is neither unix seconds nor an ISO 8601 time", param_hint=name) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


@audit.command("search")
@_db
@click.option("--conversation", help="Conversation id.")
@click.option("--endpoint", help="Sender or recipient endpoint id.")
@click.option("--outcome", "--decision", "outcome", help="Decision outcome (allow, transform, reroute, block).")
@click.option("--direction", type=click.Choice(["outbound", "inbound", "block"]), help="Hop direction.")
@click.option("--entity", "entity_type", help="Entity type the message carried (e.g. EMAIL_ADDRESS).")
@click.option("--since", help="Earliest record time (unix seconds or ISO 8601, UTC if no zone).")
@click.option("--until", help="Latest record time.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@_config
@_trust_opt
@_errors
def search_cmd(db: str, conversation: str | None, endpoint: str | None, outcome: str | None, direction: str | None,
               entity_type: str | None, since: str | None, until: str | None, limit: int, config: Path | None,
               trust: tuple[Path, ...]) -> None:
    """Find verified entries by conversation, endpoint, decision, entity type or time."""
    with _open(db) as store:
        t = _trust(store, config, trust)
        store.refresh_index(t.records)
        found = store.search(conversation=conversation, endpoint=endpoint, outcome=outcome, direction=direction,
                             entity_type=entity_type, since=_epoch_ms(since, "--since"),
                             until=_epoch_ms(until, "--until"),
                             limit=limit)
    _out.print(_render.entries_table([(e.index, e, None) for e in found], f"{len(found)} matching entries"))


@audit.command("prove")
@_db
@click.argument("index", type=click.IntRange(0))
@click.option("--size", type=click.IntRange(1), help="Tree size to prove against (default: latest checkpoint).")
@_config
@_trust_opt
@_errors
def prove_cmd(db: str, index: int, size: int | None, config: Path | None, trust: tuple[Path, ...]) -> None:
    """Print and check the inclusion proof of entry INDEX against a signed checkpoint."""
    with _open(db) as store:
        t = _trust(store, config, trust)
        signed = {c.size: c for c in (_opened(s.envelope, t) for s in store.checkpoints()) if c is not None}
        if size is None:
            covering = [s for s in signed if s > index]
            if not covering:
                raise ConfigError(f"no valid checkpoint covers entry {index}; pass --size")
            size = min(covering)
        entry = store.entry(index)
        proof = store.inclusion_proof(index, size)
        root = signed[size].root if size in signed else store.root(size)
    click.echo(json.dumps({"index": index, "tree_size": size, "leaf_hash": entry.leaf_hash.hex(),
                           "root": root.hex(), "signed_root": size in signed,
                           "proof": [h.hex() for h in proof]}, indent=2))
    try:
        verify_inclusion(index, size, leaf_hash(entry.envelope), proof, root)
    except ProofError as exc:
        click.echo(f"inclusion proof FAILS: {exc}", err=True)
        sys.exit(1)
    origin = "a signed checkpoint" if size in signed else "the store's root (no checkpoint of this size)"
    click.echo(f"entry {index} is included in the tree of size {size} ({origin})", err=True)


def _opened(envelope: bytes, t: Trust) -> Checkpoint | None:
    try:
        return open_checkpoint(envelope, t.log)
    except SignatureError:
        return None


@audit.command("consistency")
@_db
@click.argument("old", type=click.IntRange(0))
@click.argument("new", type=click.IntRange(0))
@_config
@_trust_opt
@_errors
def consistency_cmd(db: str, old: int, new: int, config: Path | None, trust: tuple[Path, ...]) -> None:
    """Print and check the consistency proof between tree sizes OLD and NEW."""
    if old > new:
        raise click.BadParameter(f"OLD ({old}) must not be larger than NEW ({new})")
    with _open(db) as store:
        t = _trust(store, config, trust)
        signed = {c.size: c for c in (_opened(s.envelope, t) for s in store.checkpoints()) if c is not None}
        proof = store.consistency_proof(old, new)
        roots = {n: signed[n].root if n in signed else store.root(n) for n in (old, new)}
    click.echo(json.dumps({"old_size": old, "new_size": new, "old_root": roots[old].hex(),
                           "new_root": roots[new].hex(), "signed": [n for n in (old, new) if n in signed],
                           "proof": [h.hex() for h in proof]}, indent=2))
    try:
        verify_consistency(old, new, roots[old], roots[new], proof)
    except ProofError as exc:
        click.echo(f"consistency proof FAILS: {exc}", err=True)
        sys.exit(1)
    click.echo(f"tree size {old} is a prefix of tree size {new}", err=True)


@audit.command("export")
@_db
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="File (default: stdout).")
@_errors
def export_cmd(db: str, out: Path | None) -> None:
    """Write every entry and checkpoint as JSON Lines (exact envelope bytes as text)."""
    with _open(db) as store, (out.open("w", encoding="utf-8") if out else _stdout()) as fh:
        for e in store.entries():
            fh.write(json.dumps({"type": "entry", "index": e.index, "leaf_hash": e.leaf_hash.hex(),
                                 "recorded_at": e.recorded_at, **_bytes_field(e.envelope)}) + "\n")
        for c in store.checkpoints():
            fh.write(json.dumps({"type": "checkpoint", "id": c.id, "size": c.size, "root": c.root.hex(),
                                 **_bytes_field(c.envelope)}) + "\n")


def _bytes_field(envelope: bytes) -> dict[str, str]:
    """The exact envelope bytes: as text when ASCII (always, unless tampered), else as base64."""
    try:
        return {"envelope": envelope.decode("ascii")}
    except UnicodeDecodeError:
        return {"envelope_base64": base64.b64encode(envelope).decode("ascii")}


@contextmanager
def _stdout() -> Iterator[Any]:
    yield sys.stdout


@audit.command("checkpoint")
@_db
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="Where to save the latest checkpoint, for a later 'verify --checkpoint'.")
@_errors
def checkpoint_cmd(db: str, out: Path) -> None:
    """Save the latest signed checkpoint outside the log (a witness copy)."""
    with _open(db) as store:
        latest = store.checkpoint()
    out.write_bytes(latest.envelope + b"\n")
    click.echo(f"saved checkpoint of size {latest.size} to {out}", err=True)


@audit.command("graph")
@_db
@click.argument("conversation")
@_config
@_trust_opt
@_errors
def graph_cmd(db: str, conversation: str, config: Path | None, trust: tuple[Path, ...]) -> None:
    """The provenance chain of CONVERSATION as a tree (records under their parents)."""
    with _open(db) as store:
        t = _trust(store, config, trust)
        store.refresh_index(t.records)
        found = store.search(conversation=conversation, limit=100_000)
        records = []
        for e in found:
            view, _ = _view(store.entry(e.index).envelope, t)
            if view is not None:
                records.append((e.index, view))
    if not records:
        raise ConfigError(f"no verified records of conversation {conversation!r} in {db!r}")
    _out.print(_render.provenance_tree(conversation, records))


@audit.command("reputation")
@_db
@click.option("--dissent-threshold", type=click.FloatRange(0.0, 1.0),
              help="Flag endpoints whose dissent rate reaches this (default: verify.dissent_threshold of --config, "
                   "else 0.3).")
@click.option("--min-votes", type=click.IntRange(1), default=5, show_default=True,
              help="Flag only endpoints with at least this many counted answers.")
@_config
@_errors
def reputation_cmd(db: str, dissent_threshold: float | None, min_votes: int, config: Path | None) -> None:
    """Per-endpoint agreement history recorded by the verifiers; flags frequent dissenters."""
    from trustlayer.verifiers.reputation import Reputation

    if dissent_threshold is None:
        if config is not None:
            from trustlayer.config import load_config

            dissent_threshold = load_config(config).verify.dissent_threshold
        else:
            dissent_threshold = 0.3
    with _open(db) as store:
        rows = store.reputation()
        flagged = set(Reputation(store).flagged(dissent_threshold, min_votes=min_votes))
    if not rows:
        _out.print("no agreement history recorded yet")
        return
    _out.print(_render.reputation_table(rows, flagged))
    if flagged:
        _out.print(f"flagged (dissent rate >= {dissent_threshold:.2f} over >= {min_votes} votes): "
                   + ", ".join(sorted(flagged)), markup=False)
