"""``trustlayer keys``: generate, show and rotate Ed25519 keys.

    trustlayer keys generate --out .trustlayer              # id.key (0600), id.key.pub, record.salt
    trustlayer keys show .trustlayer/id.key                 # key id and base64 public key
    trustlayer keys rotate .trustlayer/id.key               # new key + announcement signed by the old one

Exit codes: 0 ok; 1 a key or signature check failed; 2 usage or input error (missing
file, wrong passphrase, unset passphrase variable, file exists).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.table import Table

from trustlayer.errors import ConfigError, SignatureError, TrustError
from trustlayer.provenance.keys import SigningKey, VerifyKey
from trustlayer.provenance.rotation import announce_rotation
from trustlayer.provenance.salt import load_salt

__all__ = ["keys"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map trustlayer errors to one line on stderr and the documented exit codes."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
        except SignatureError as exc:
            _fail(str(exc), EXIT_PROBLEM)
        except TrustError as exc:
            _fail(str(exc), EXIT_PROBLEM)

    return wrapper


def _passphrase(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        _fail(f"--passphrase-env names ${var}, which is not set or empty", EXIT_USAGE)
    return value


def _table(rows: list[tuple[str, str]]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    Console(soft_wrap=False, width=max(120, len(rows[0][1]) + 20)).print(table)


def _write_public(path: Path, key: VerifyKey, force: bool) -> None:
    key.save(path, overwrite=force)


@click.group("keys", context_settings={"help_option_names": ["-h", "--help"]})
def keys() -> None:
    """Generate, show and rotate Ed25519 keys.

    Exit codes: 0 ok, 1 a key or signature check failed, 2 usage or input error.
    """


@keys.command("generate")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path(".trustlayer"),
              show_default=True, help="Directory for the key files.")
@click.option("--name", default="id", show_default=True, help="File name stem: NAME.key and NAME.key.pub.")
@click.option("--passphrase-env", metavar="VAR", help="Encrypt the private key with the passphrase in $VAR.")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@_errors
def generate(out: Path, name: str, passphrase_env: str | None, force: bool) -> None:
    """Write a new key pair (private file mode 0600) and, if absent, the record salt."""
    passphrase = _passphrase(passphrase_env)
    key = SigningKey.generate()
    key_path = out / f"{name}.key"
    pub_path = out / f"{name}.key.pub"
    if not force:
        for p in (key_path, pub_path):
            if p.exists():
                raise ConfigError(f"{str(p)!r} already exists; pass --force to overwrite it", path=str(p))
    key.save(key_path, passphrase, overwrite=force)
    _write_public(pub_path, key.public, force)
    salt_path = out / "record.salt"
    created = not salt_path.exists()
    load_salt(salt_path, create=True)
    _table([
        ("key id", key.key_id),
        ("public key", key.public.to_base64()),
        ("private key", f"{key_path} (mode 0600{', encrypted' if passphrase else ''})"),
        ("public key file", str(pub_path)),
        ("record salt", f"{salt_path} ({'created' if created else 'kept'}, mode 0600)"),
    ])


@keys.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--passphrase-env", metavar="VAR", help="Passphrase of an encrypted private key, in $VAR.")
@_errors
def show(file: Path, passphrase_env: str | None) -> None:
    """Print the key id and base64 public key of a private or public key FILE."""
    data = file.read_bytes() if file.is_file() else b""
    if b"PRIVATE KEY-----" in data:
        public = SigningKey.from_file(file, _passphrase(passphrase_env)).public
        kind = "private (encrypted)" if b"ENCRYPTED" in data else "private"
    else:
        public = VerifyKey.from_file(file)
        kind = "public"
    _table([("key id", public.key_id), ("public key", public.to_base64()), ("file", f"{file} ({kind})")])


@keys.command("rotate")
@click.argument("old_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the new files (default: the old key's directory).")
@click.option("--name", default=None, help="File name stem of the new key (default: id-<first 8 of key id>).")
@click.option("--passphrase-env", metavar="VAR", help="Passphrase of the old key, in $VAR.")
@click.option("--new-passphrase-env", metavar="VAR", help="Encrypt the new key with the passphrase in $VAR.")
@click.option("--reason", default="scheduled", show_default=True, help="Why the key is rotated (no personal data).")
@_errors
def rotate(old_key: Path, out: Path | None, name: str | None, passphrase_env: str | None,
           new_passphrase_env: str | None, reason: str) -> None:
    """Make a successor of OLD_KEY and the announcement envelope signed by both keys.

    Give the announcement (NAME.rotation.json) to every peer; their keyrings accept the new
    key once they verify it with the old one (``Keyring.accept_rotation``).
    """
    old = SigningKey.from_file(old_key, _passphrase(passphrase_env))
    new_passphrase = _passphrase(new_passphrase_env)
    new = SigningKey.generate()
    out = out if out is not None else old_key.parent
    stem = name or f"id-{new.key_id[:8]}"
    key_path, pub_path, ann_path = out / f"{stem}.key", out / f"{stem}.key.pub", out / f"{stem}.rotation.json"
    for p in (key_path, pub_path, ann_path):
        if p.exists():
            raise ConfigError(f"{str(p)!r} already exists; choose another --name", path=str(p))
    envelope = announce_rotation(old, new, reason=reason)
    new.save(key_path, new_passphrase)
    _write_public(pub_path, new.public, False)
    ann_path.write_bytes(envelope)  # the exact signed bytes; no trailing newline
    _table([
        ("old key id", old.key_id),
        ("new key id", new.key_id),
        ("new public key", new.public.to_base64()),
        ("new private key", f"{key_path} (mode 0600{', encrypted' if new_passphrase else ''})"),
        ("announcement", f"{ann_path} (signed by the old and the new key)"),
    ])

