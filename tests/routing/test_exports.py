"""The routing package exports what it names, and loads torch only when a router is used."""

from __future__ import annotations

import subprocess
import sys

import trustlayer.routing as routing


def test_every_exported_name_resolves() -> None:
    assert routing.__all__ == sorted(routing.__all__)
    for name in routing.__all__:
        assert getattr(routing, name) is not None


def test_importing_the_package_and_its_data_format_does_not_load_torch() -> None:
    code = ("import sys, trustlayer.routing, trustlayer.routing.examples, trustlayer.routing.cli;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
