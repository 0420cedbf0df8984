import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.cli import cli
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_generate_show_rotate(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = runner.invoke(cli, ["keys", "generate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    key = SigningKey.from_file(out / "id.key")
    assert stat.S_IMODE((out / "id.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "record.salt").stat().st_mode) == 0o600
    assert VerifyKey.from_file(out / "id.key.pub") == key.public
    assert key.key_id in result.output and key.public.to_base64() in result.output

    shown = runner.invoke(cli, ["keys", "show", str(out / "id.key.pub")])
    assert shown.exit_code == 0 and key.key_id in shown.output

    rotated = runner.invoke(cli, ["keys", "rotate", str(out / "id.key"), "--name", "next"])
    assert rotated.exit_code == 0, rotated.output
    new = SigningKey.from_file(out / "next.key")
    ring = Keyring()
    ring.add(key.public, owner="me")
    assert ring.accept_rotation((out / "next.rotation.json").read_bytes()) == new.public


def test_passphrase_env(runner: CliRunner, tmp_path: Path) -> None:
    env = {"TL_PASS": "s3cret"}
    result = runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path), "--passphrase-env", "TL_PASS"], env=env)
    assert result.exit_code == 0, result.output
    assert b"ENCRYPTED" in (tmp_path / "id.key").read_bytes()
    locked = runner.invoke(cli, ["keys", "show", str(tmp_path / "id.key")])
    assert locked.exit_code == 2 and "needs a passphrase" in locked.output
    unlocked = runner.invoke(cli, ["keys", "show", str(tmp_path / "id.key"), "--passphrase-env", "TL_PASS"], env=env)
    assert unlocked.exit_code == 0
    assert SigningKey.from_file(tmp_path / "id.key", "s3cret").key_id in unlocked.output


def test_usage_errors_exit_2_with_one_line(runner: CliRunner, tmp_path: Path) -> None:
    unset = runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path), "--passphrase-env", "TL_UNSET_VAR"])
    assert unset.exit_code == 2 and "$TL_UNSET_VAR, which is not set" in unset.output
    missing = runner.invoke(cli, ["keys", "show", str(tmp_path / "nope.pub")])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [f"error: public key file '{tmp_path / 'nope.pub'}' does not exist"]
    assert runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert "Traceback" not in again.output


def test_show_rejects_a_non_key_file(runner: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    result = runner.invoke(cli, ["keys", "show", str(junk)])
    assert result.exit_code == 2 and "neither a PEM public key" in result.output


def test_rotate_encrypted_keys(runner: CliRunner, tmp_path: Path) -> None:
    env = {"OLD_PASS": "old-pw", "NEW_PASS": "new-pw"}
    assert runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path), "--passphrase-env", "OLD_PASS"],
                         env=env).exit_code == 0
    without = runner.invoke(cli, ["keys", "rotate", str(tmp_path / "id.key")])
    assert without.exit_code == 2 and "needs a passphrase" in without.output
    out = tmp_path / "next"
    result = runner.invoke(cli, ["keys", "rotate", str(tmp_path / "id.key"), "--out", str(out), "--name", "n",
                                 "--passphrase-env", "OLD_PASS", "--new-passphrase-env", "NEW_PASS"], env=env)
    assert result.exit_code == 0, result.output
    new = SigningKey.from_file(out / "n.key", "new-pw")
    ring = Keyring()
    ring.add(SigningKey.from_file(tmp_path / "id.key", "old-pw").public, owner="me")
    assert ring.accept_rotation((out / "n.rotation.json").read_bytes()).key_id == new.key_id
    again = runner.invoke(cli, ["keys", "rotate", str(tmp_path / "id.key"), "--out", str(out), "--name", "n",
                                "--passphrase-env", "OLD_PASS"], env=env)
    assert again.exit_code == 2 and "already exists" in again.output
