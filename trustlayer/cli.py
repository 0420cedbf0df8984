"""The ``trustlayer`` command.

Each group lives next to the part it drives and is imported only when used, so
``trustlayer audit verify`` never loads the NER model::

    trustlayer init                      write a starter trustlayer.yaml and a key pair
    trustlayer demo                      run the end-to-end demonstration
    trustlayer redact                    redact text or JSONL from stdin
    trustlayer policy check|explain|test|prove|export
    trustlayer audit verify|show|tail|search|prove|consistency|export|graph
    trustlayer keys generate|show|rotate
    trustlayer serve                     the OpenAI-compatible proxy
    trustlayer router train|evaluate|show

Exit codes: 0 ok; 1 the check found a problem (tampered log, failing policy test,
blocked request, failed demo); 2 usage or input error (bad flags, missing or
invalid file).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from trustlayer.errors import ConfigError, TrustError

__all__ = ["main"]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2

# group name -> (module, attribute, one-line help); imported lazily on use.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("trustlayer._init_cmd", "init", "Write a commented starter trustlayer.yaml and a key pair."),
    "demo": ("trustlayer.demo", "demo", "Run the end-to-end demonstration on embedded defaults."),
    "redact": ("trustlayer.redaction.cli", "redact", "Redact text or JSONL read from stdin."),
    "policy": ("trustlayer.policy.cli", "policy", "Check, explain, test and prove residency policies."),
    "audit": ("trustlayer.audit.cli", "audit", "Verify and review the signed audit log."),
    "keys": ("trustlayer.provenance.cli", "keys", "Generate, show and rotate Ed25519 keys."),
    "serve": ("trustlayer.intercept.proxy_cli", "serve", "Run the OpenAI-compatible proxy."),
    "router": ("trustlayer.routing.cli", "router", "Train, evaluate and show the private router."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, help_text = entry
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = exc.name or module_name

            @click.command(cmd_name, help=help_text, context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args: tuple[str, ...]) -> None:
                raise click.ClickException(
                    f"'trustlayer {cmd_name}' is not available: module {missing!r} could not be imported "
                    "(is the extra that provides it installed? see README)"
                )

            return unavailable
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attr} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trustlayer")
def cli() -> None:
    """trustlayer: redaction, residency policy, signed provenance and audit for LLM traffic.

    Exit codes: 0 ok, 1 the check found a problem, 2 usage or input error.
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the console script; maps trustlayer errors to exit codes."""
    try:
        return cli.main(args=argv, prog_name="trustlayer", standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except TrustError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_PROBLEM)
