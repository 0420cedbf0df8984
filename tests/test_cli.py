"""Every command group answers --help, and errors map to the documented exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.cli import _COMMANDS, cli, main

GROUPS = sorted(_COMMANDS)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_help(group: str) -> None:
    result = CliRunner().invoke(cli, [group, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_root_help_lists_every_group_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for group in GROUPS:
        assert group in result.output
    assert "2 usage or input error" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    assert CliRunner().invoke(cli, ["frobnicate"]).exit_code == 2


def test_init_writes_a_loadable_config(tmp_path: Path) -> None:
    from trustlayer import load_config

    result = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path), "--id", "laptop", "--jurisdiction", "fr"])
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "trustlayer.yaml")
    assert cfg.me.id == "laptop" and cfg.me.jurisdiction == "FR"
    assert (tmp_path / "keys" / "laptop.key").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_console_script_maps_config_errors_to_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nidentity: {id: x, key: k}\nendpoints: []\n")
    with pytest.raises(SystemExit) as info:
        main(["serve", "--config", str(bad)])
    assert info.value.code == 2


def test_installed_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "trustlayer", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "0.1.0" in out.stdout
