"""``trustlayer router``: train a router with DP-SGD, evaluate it, show its signed model card.

    trustlayer router train --epsilon 3 --data routing.jsonl --out router/ --key id.key
    trustlayer router evaluate --model router/ --data heldout.jsonl --trust id.key.pub
    trustlayer router show router/ --trust id.key.pub
    trustlayer router labels --log audit.db --journal journal.jsonl --local phone --config trustlayer.yaml --out d.jsonl

Exit codes: 0 ok; 1 the check found a problem (a tampered or untrusted router, accuracy
below ``--min-accuracy``); 2 usage or input error (bad flags, a missing or malformed data
file, data DP-SGD cannot train on, such as δ >= 1/N or too few examples).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trustlayer.errors import ConfigError, RouterError, SignatureError, TrustError
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey
from trustlayer.routing.card import CardRejected, ModelCard
from trustlayer.routing.examples import RoutingDataError

if TYPE_CHECKING:
    from trustlayer.provenance.sequence import SequenceCounter
    from trustlayer.routing.router import PrivateRouter

__all__ = ["router"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _keyring(trust: tuple[str, ...], config: str | None) -> Keyring:
    ring = Keyring()
    try:
        if config is not None:
            from trustlayer.config import load_config

            ring = Keyring.from_config(load_config(config))
        for path in trust:
            ring.add(VerifyKey.from_file(path))
    except (ConfigError, SignatureError) as exc:
        _fail(str(exc), EXIT_USAGE)
    if not len(ring):
        _fail("no trusted key: pass --trust PUBLIC_KEY_FILE (the trainer's key) or --config trustlayer.yaml",
              EXIT_USAGE)
    return ring


def _load(model: str, ring: Keyring) -> PrivateRouter:
    # torch loads here, not at import, so `trustlayer router --help` stays fast.
    from trustlayer.routing.router import PrivateRouter

    try:
        return PrivateRouter.load(model, ring)
    except CardRejected as exc:
        _fail(str(exc), EXIT_PROBLEM)
    except RouterError as exc:
        _fail(str(exc), EXIT_USAGE)


_trust_option = click.option("--trust", "trust", multiple=True, type=click.Path(dir_okay=False),
                             help="Public key file of a trainer whose routers you accept (repeatable).")
_config_option = click.option("--config", type=click.Path(dir_okay=False),
                              help="trustlayer.yaml: trust its identity and peer keys.")


@click.group("router")
def router() -> None:
    """Train, evaluate and show the private (DP-SGD) router.

    Exit codes: 0 ok, 1 the check found a problem, 2 usage or input error.
    """


@router.command("train")
@click.option("--epsilon", type=float, required=True, help="Target ε of the (ε, δ) guarantee.")
@click.option("--delta", type=float, default=None, help="Target δ; must be below 1/N (default: 1/(10 N)).")
@click.option("--data", type=click.Path(dir_okay=False), required=True, help="Routing data (JSONL).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for weights and card.")
@click.option("--key", type=click.Path(dir_okay=False), default=None, help="Ed25519 private key that signs the card.")
@click.option("--passphrase-env", default=None, help="Environment variable holding the key's passphrase.")
@click.option("--config", type=click.Path(dir_okay=False), help="trustlayer.yaml: sign with its identity key instead.")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True, help="Expected (Poisson) batch size.")
@click.option("--learning-rate", type=float, default=2.0, show_default=True)
@click.option("--max-grad-norm", type=float, default=1.0, show_default=True, help="Per-example clipping norm.")
@click.option("--hidden", type=int, default=0, show_default=True, help="Hidden units; 0 = logistic regression.")
@click.option("--n-features", type=int, default=1024, show_default=True, help="Hashed n-gram buckets.")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Route locally when P(local suffices) >= threshold.")
@click.option("--min-examples", type=int, default=100, show_default=True)
@click.option("--unsafe-seed", type=int, default=None,
              help="Experiments only: reproducible noise and sampling (voids the guarantee for whoever knows it).")
@click.option("--record", type=click.Path(dir_okay=False), default=None,
              help="Also write the signed training record (DSSE envelope) here, for the audit log.")
@click.option("--sequence-state", type=click.Path(dir_okay=False), default=None,
              help="Sequence state file of the key for --record (default: the gate's, <key file>.seq).")
@click.option("--overwrite", is_flag=True, help="Replace a router already in --out.")
def train(epsilon: float, delta: float | None, data: str, out: str, key: str | None, passphrase_env: str | None,
          config: str | None, epochs: int, batch_size: int, learning_rate: float, max_grad_norm: float, hidden: int,
          n_features: int, threshold: float, min_examples: int, unsafe_seed: int | None, record: str | None,
          sequence_state: str | None, overwrite: bool) -> None:
    """Train a router with DP-SGD to (ε, δ) and write it with its signed model card.

    The card is signed with --key, or with the identity key of --config (whose sequence
    file then numbers the --record, as the gate's records are numbered).
    """
    from pydantic import ValidationError

    from trustlayer.routing.examples import read_jsonl
    from trustlayer.routing.model import TrainConfig, UnsafeSeedWarning
    from trustlayer.routing.train import check_training_data, train_router

    if (key is None) == (config is None):
        _fail("give exactly one of --key (a private key file) and --config (use its identity key)", EXIT_USAGE)
    try:
        settings = TrainConfig(epsilon=epsilon, delta=delta, epochs=epochs, batch_size=batch_size,
                             learning_rate=learning_rate, max_grad_norm=max_grad_norm, hidden=hidden,
                             n_features=n_features, threshold=threshold, min_examples=min_examples,
                             unsafe_seed=unsafe_seed)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        _fail(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}", EXIT_USAGE)
    try:
        signing_key, sequence = _signing(key, passphrase_env, config)
        examples = read_jsonl(data)
        check_training_data(examples, settings)  # refuse before the progress display starts
    except (ConfigError, RouterError) as exc:
        _fail(str(exc), EXIT_USAGE)
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("DP-SGD"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("train", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UnsafeSeedWarning)
                trained = train_router(examples, settings, key=signing_key, progress=progress)
        for warning in caught:
            click.echo(f"warning: {warning.message}", err=True)
        trained.save(out, overwrite=overwrite)
    except RouterError as exc:
        _fail(str(exc), EXIT_USAGE)
    p = trained.card.privacy
    click.echo(f"trained on N={p.n_examples}: epsilon={p.epsilon:.4f} delta={p.delta:.3g} (accountant: "
               f"{p.accountant}), noise multiplier {p.noise_multiplier:.4f}, clip {p.max_grad_norm:g}, "
               f"{p.epochs} epochs, {p.steps} steps")
    click.echo(f"wrote {Path(out) / trained.card.weights_file} (sha256 {trained.card.weights_sha256[:16]}...) "
               "and its signed model card")
    if record is not None:
        from trustlayer.provenance.sequence import SequenceCounter
        from trustlayer.routing.record import training_record

        try:
            if sequence_state is not None:
                sequence = SequenceCounter(signing_key.key_id, Path(sequence_state))
            signed = training_record(trained, key=signing_key, sequence=sequence)
            Path(record).write_bytes(signed.envelope)
        except (TrustError, OSError) as exc:
            _fail(f"cannot write the training record {record!r}: {exc}", EXIT_USAGE)
        click.echo(f"wrote the signed training record {record} (id {signed.digest[:16]}...)")


def _signing(key: str | None, passphrase_env: str | None, config: str | None) -> tuple[SigningKey, SequenceCounter]:
    from trustlayer.provenance.sequence import SequenceCounter

    if config is not None:
        from trustlayer.config import load_config
        from trustlayer.provenance.from_config import signer_from_config

        signer = signer_from_config(load_config(config))
        return signer.key, signer.sequence
    path = Path(key or "")
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    signing_key = SigningKey.from_file(path, passphrase)
    # provenance.from_config keeps the sequence next to the key as <key file>.seq; so do we.
    return signing_key, SequenceCounter(signing_key.key_id, path.with_name(path.name + ".seq"))


@router.command("evaluate")
@click.option("--model", type=click.Path(file_okay=False), required=True, help="Router directory.")
@click.option("--data", type=click.Path(dir_okay=False), required=True, help="Labelled routing data (JSONL).")
@_trust_option
@_config_option
@click.option("--min-accuracy", type=click.FloatRange(0.0, 1.0), default=None,
              help="Exit 1 when routing accuracy is below this.")
def evaluate(model: str, data: str, trust: tuple[str, ...], config: str | None, min_accuracy: float | None) -> None:
    """Routing accuracy and cloud-call rate of a trained router on labelled data."""
    from trustlayer.routing.evaluate import evaluate_router
    from trustlayer.routing.examples import read_jsonl

    loaded = _load(model, _keyring(trust, config))
    try:
        report = evaluate_router(loaded, read_jsonl(data))
    except RouterError as exc:
        _fail(str(exc), EXIT_USAGE)
    table = Table(title=f"router {model} on {data}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("examples", str(report.n))
    table.add_row("routing accuracy", f"{report.accuracy:.3f}")
    table.add_row("cloud-call rate", f"{report.cloud_rate:.3f}")
    table.add_row("kept local, needed cloud", str(report.kept_local_wrongly))
    table.add_row("sent to cloud needlessly", str(report.sent_to_cloud_needlessly))
    table.add_row("local sufficed (labels)", f"{report.local_sufficed_rate:.3f}")
    table.add_row("epsilon / delta", f"{loaded.card.privacy.epsilon:.4f} / {loaded.card.privacy.delta:.3g}")
    Console().print(table)
    if min_accuracy is not None and report.accuracy < min_accuracy:
        _fail(f"routing accuracy {report.accuracy:.3f} is below --min-accuracy {min_accuracy:g}", EXIT_PROBLEM)


def _card_table(card: ModelCard, status: str) -> Table:
    p = card.privacy
    table = Table(title=f"router model card ({status})", show_header=False)
    table.add_column("field")
    table.add_column("value")
    signals = ", ".join(card.features.signal_names) or "none"
    rows = [
        ("guarantee", f"(ε = {p.epsilon:.4f}, δ = {p.delta:.3g})-DP, {p.mechanism}, {p.accountant} accountant"),
        ("target ε", f"{p.target_epsilon:g}"),
        ("protects", f"each {p.unit} (a person with k requests: about k·ε)"),
        ("examples (N)", str(p.n_examples)),
        ("clipping norm", f"{p.max_grad_norm:g}"),
        ("noise multiplier", f"{p.noise_multiplier:.4f}"),
        ("epochs / steps", f"{p.epochs} / {p.steps} (sample rate {p.sample_rate:.4g}, "
                           f"expected batch {p.expected_batch_size})"),
        ("secure RNG", "yes" if p.secure_rng else "no (torchcsprng unavailable)"),
        ("seeded", "YES: experiment only, the noise is reproducible" if p.seeded else "no"),
        ("library", f"{p.library}, torch {card.torch_version}"),
        ("model", f"{card.architecture} (hidden {card.hidden}), {card.features.n_features} hashed n-gram "
                  f"buckets (n <= {card.features.ngram_max}), signals: {signals}"),
        ("threshold", f"{card.threshold:g}"),
        ("weights", f"{card.weights_file} sha256 {card.weights_sha256}"),
        ("trainer key", card.trainer_key_id),
        ("created", card.created),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


@router.command("show")
@click.argument("directory", type=click.Path(file_okay=False))
@_trust_option
@_config_option
def show(directory: str, trust: tuple[str, ...], config: str | None) -> None:
    """Show a router's model card after verifying its signature and its weights."""
    loaded = _load(directory, _keyring(trust, config))
    Console().print(_card_table(loaded.card, "signature and weights verified"))


@router.command("labels")
@click.option("--log", "log", type=click.Path(dir_okay=False), required=True,
              help="The audit log: a SQLite file, or a 'trustlayer audit export' JSONL file.")
@click.option("--journal", type=click.Path(dir_okay=False), required=True, help="The device's feature journal.")
@click.option("--local", "local_id", required=True, help="Endpoint id of the local model.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Routing data file to write (JSONL).")
@_trust_option
@_config_option
def labels(log: str, journal: str, local_id: str, out: str, trust: tuple[str, ...], config: str | None) -> None:
    """Build labelled routing data from verified audit verdicts and the device's feature journal."""
    from trustlayer.routing.examples import write_jsonl
    from trustlayer.routing.labels import FeatureJournal, envelopes_from_export, examples_from_log

    ring = _keyring(trust, config)
    try:
        if log.endswith(".jsonl"):
            examples = examples_from_log(envelopes_from_export(log), ring, FeatureJournal(journal).read(),
                                         local_id=local_id)
        else:
            from trustlayer.audit.store import open_store
            from trustlayer.routing.labels import envelopes_from_store

            if not Path(log).is_file():
                _fail(f"audit log {log!r} does not exist", EXIT_USAGE)
            with open_store(f"sqlite:///{Path(log).resolve()}") as store:
                examples = examples_from_log(envelopes_from_store(store), ring, FeatureJournal(journal).read(),
                                             local_id=local_id)
    except RoutingDataError as exc:
        _fail(str(exc), EXIT_USAGE)
    except TrustError as exc:  # a record that does not verify: the log itself is the problem
        _fail(str(exc), EXIT_PROBLEM)
    count = write_jsonl(out, examples)
    sufficed = sum(ex.local_sufficed for ex in examples)
    click.echo(f"wrote {count} labelled examples to {out} ({sufficed} where the local model sufficed)")
