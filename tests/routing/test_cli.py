"""`trustlayer router train|evaluate|show`: real files, real keys, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.cli import cli
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.routing.examples import write_jsonl
from trustlayer.routing.simulate import simulated_routing_set


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("router-cli")
    write_jsonl(base / "train.jsonl", simulated_routing_set(400, seed=21))
    write_jsonl(base / "test.jsonl", simulated_routing_set(200, seed=22))
    key = SigningKey.generate()
    key.save(base / "id.key")
    key.public.save(base / "id.key.pub")
    return base


@pytest.fixture(scope="module")
def model(workdir: Path) -> Path:
    result = CliRunner().invoke(cli, [
        "router", "train", "--epsilon", "4", "--data", str(workdir / "train.jsonl"), "--out", str(workdir / "m"),
        "--key", str(workdir / "id.key"), "--epochs", "3", "--batch-size", "32", "--n-features", "256",
        "--record", str(workdir / "training.dsse.json"),
    ])
    assert result.exit_code == 0, result.output
    assert "epsilon=" in result.output and "N=400" in result.output
    return workdir / "m"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["router", *args])
    return result.exit_code, result.stdout, result.stderr


def test_train_writes_router_card_and_record(model: Path, workdir: Path) -> None:
    assert sorted(p.name for p in model.iterdir()) == ["model_card.dsse.json", "model_card.json", "router.pt"]
    card = json.loads((model / "model_card.json").read_text())
    ring = Keyring()
    ring.add(SigningKey.from_file(workdir / "id.key").public)
    record = json.loads(open_envelope((workdir / "training.dsse.json").read_bytes(), ring).payload)
    assert record["predicate"]["privacy"]["epsilon"] == card["privacy"]["epsilon"]
    assert float(card["privacy"]["epsilon"]) <= 4.0
    assert (workdir / "id.key.seq").exists()  # the sequence is the key's, shared with the gate


def test_evaluate_prints_accuracy_and_cloud_rate(model: Path, workdir: Path) -> None:
    code, out, _ = run("evaluate", "--model", str(model), "--data", str(workdir / "test.jsonl"),
                       "--trust", str(workdir / "id.key.pub"))
    assert code == 0
    assert "routing accuracy" in out and "cloud-call rate" in out and "200" in out


def test_evaluate_below_min_accuracy_exits_1(model: Path, workdir: Path) -> None:
    code, _, err = run("evaluate", "--model", str(model), "--data", str(workdir / "test.jsonl"),
                       "--trust", str(workdir / "id.key.pub"), "--min-accuracy", "1.0")
    assert code == 1
    assert "is below --min-accuracy 1" in err


def test_show_prints_the_verified_card(model: Path, workdir: Path) -> None:
    code, out, _ = run("show", str(model), "--trust", str(workdir / "id.key.pub"))
    card = json.loads((model / "model_card.json").read_text())
    assert code == 0
    assert "signature and weights verified" in out
    assert f"{float(card['privacy']['epsilon']):.4f}" in out
    assert "400" in out


def test_show_tampered_card_exits_1(model: Path, workdir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    for f in model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    card = json.loads((copy / "model_card.json").read_text())
    card["privacy"]["n_examples"] = 1_000_000
    (copy / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    code, out, err = run("show", str(copy), "--trust", str(workdir / "id.key.pub"))
    assert code == 1
    assert "refusing to load: model_card.json differs from the signed card" in err
    assert "1000000" not in out


def test_show_without_a_trusted_key_exits_2(model: Path) -> None:
    code, _, err = run("show", str(model))
    assert code == 2
    assert "no trusted key: pass --trust" in err


@pytest.mark.parametrize(("extra", "problem"), [
    (["--delta", "0.01"], "delta 0.01 must be below 1/N = 0.0025 for N = 400 examples"),
    (["--min-examples", "1000"], "too little data to train a private router: 400 examples, at least 1000"),
    (["--epsilon", "-1"], "--epsilon: Input should be greater than 0"),
])
def test_train_refusals_exit_2(workdir: Path, tmp_path: Path, extra: list[str], problem: str) -> None:
    code, _, err = run("train", "--epsilon", "3", "--data", str(workdir / "train.jsonl"), "--out",
                       str(tmp_path / "m"), "--key", str(workdir / "id.key"), *extra)
    assert code == 2
    assert problem in err
    assert err.count("\n") == 1  # one clear line, no traceback
    assert not (tmp_path / "m").exists()


def test_train_missing_data_file_exits_2(workdir: Path, tmp_path: Path) -> None:
    code, _, err = run("train", "--epsilon", "3", "--data", str(tmp_path / "none.jsonl"), "--out",
                       str(tmp_path / "m"), "--key", str(workdir / "id.key"))
    assert code == 2
    assert "none.jsonl' does not exist" in err


def test_evaluate_bad_data_file_exits_2(model: Path, workdir: Path) -> None:
    bad = Path(__file__).parent.parent / "assets" / "routing" / "label_not_boolean.jsonl"
    code, _, err = run("evaluate", "--model", str(model), "--data", str(bad), "--trust", str(workdir / "id.key.pub"))
    assert code == 2
    assert "label_not_boolean.jsonl' line 2: field 'local_sufficed'" in err


def test_train_with_the_config_identity_key(workdir: Path, tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "phone.key")
    (tmp_path / "trustlayer.yaml").write_text(
        "version: 1\nidentity: {id: phone, key: phone.key}\n"
        "endpoints:\n  - {id: phone, kind: device, jurisdiction: DE}\n", encoding="utf-8")
    code, out, err = run("train", "--epsilon", "8", "--data", str(workdir / "train.jsonl"), "--out",
                         str(tmp_path / "m"), "--config", str(tmp_path / "trustlayer.yaml"), "--epochs", "1",
                         "--n-features", "64", "--record", str(tmp_path / "rec.dsse"), "--unsafe-seed", "3")
    assert code == 0, err
    assert "warning: training with unsafe_seed=3: the DP noise and sampling are reproducible" in err
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["trainer_key_id"] == key.key_id
    assert (tmp_path / "phone.key.seq").exists()  # the gate's sequence file (provenance.from_config)
    code, out, _ = run("show", str(tmp_path / "m"), "--config", str(tmp_path / "trustlayer.yaml"))
    assert code == 0 and "verified" in out
    assert "YES: experiment only" in out


@pytest.mark.parametrize("keys", [[], ["--key", "a.key", "--config", "c.yaml"]])
def test_train_needs_exactly_one_key_source(workdir: Path, keys: list[str]) -> None:
    code, _, err = run("train", "--epsilon", "3", "--data", str(workdir / "train.jsonl"), "--out", "x", *keys)
    assert code == 2
    assert "give exactly one of --key" in err
