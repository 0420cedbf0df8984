"""``trustlayer demo``: the whole path, end to end, on embedded defaults.

Starts llama.cpp's OpenAI-compatible server on 127.0.0.1 (SmolLM2, standing in for a US
cloud API), then runs the scripted scenario of :mod:`trustlayer.demo.scenario` under the
shipped ``eu-gdpr`` policy, writes the audit log into ``--dir`` and verifies it. Exits 0
only if every check held. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

__all__ = ["demo"]


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("trustlayer-demo"), show_default=True,
              help="Where to write keys, configs and the audit log (re-created on each run).")
@click.option("--max-tokens", default=48, show_default=True, type=click.IntRange(8, 512),
              help="Tokens per model answer (SmolLM2 makes about 25 tokens/s on 2 cores).")
def demo(directory: Path, max_tokens: int) -> None:
    """Run the end-to-end demonstration on embedded defaults."""
    from rich.console import Console

    from trustlayer.demo.cloud import start_cloud
    from trustlayer.demo.scenario import Scenario
    from trustlayer.demo.workspace import prepare

    console = Console()
    began = time.monotonic()
    console.print("[bold]trustlayer demo[/]: a device assistant, a US cloud and two agents under eu-gdpr.yaml\n")
    with console.status("Starting the 'US cloud' (llama.cpp server with SmolLM2 on 127.0.0.1) ..."):
        server, cloud = start_cloud()
    try:
        console.print(f"cloud stand-in listening on {server.url}/v1")
        try:
            workspace = prepare(directory.resolve(), server.url + "/v1")
        except FileExistsError as exc:
            raise click.UsageError(str(exc)) from None
        scenario = Scenario(console, workspace, cloud, max_tokens=max_tokens)
        with console.status("Loading the NER model and the device's local model ..."):
            from trustlayer.redaction import Redactor  # noqa: F401 - warm import; loading happens on first use
        scenario.device()
        scenario.agents()
        scenario.verify()
    finally:
        server.stop()
    failed = [c for c in scenario.checks if not c.held]
    took = time.monotonic() - began
    if failed:
        console.print(f"\n[red bold]{len(failed)} of {len(scenario.checks)} checks did not hold[/] ({took:.0f} s)")
        sys.exit(1)
    console.print(f"\n[green bold]all {len(scenario.checks)} checks held[/] ({took:.0f} s)")
