"""The per-deployment secret salt for content digests in records.

    >>> from trustlayer.provenance.salt import load_salt
    >>> salt = load_salt(".trustlayer/record.salt", create=True)    # doctest: +SKIP

Records carry ``SHA-256(salt || content)``, never the content: without the salt, a reader
of the audit log cannot test guesses of what crossed. The salt is 32 random bytes kept in
a file with mode 0600 next to the identity key (default ``.trustlayer/record.salt``, the
path ``trustlayer keys generate`` writes). It never enters a record, a log or an error,
and it is not shared with peers. Losing it only means old digests can no longer be
matched against content; it does not affect signatures.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from trustlayer.errors import ConfigError
from trustlayer.provenance.keys import write_private_file

__all__ = ["DEFAULT_SALT_FILE", "SALT_BYTES", "load_salt", "new_salt"]

SALT_BYTES = 32
DEFAULT_SALT_FILE = ".trustlayer/record.salt"


def new_salt() -> bytes:
    """32 fresh random bytes."""
    return os.urandom(SALT_BYTES)


def load_salt(path: str | Path, *, create: bool = False) -> bytes:
    """Read the salt file (``create``: write a new one, mode 0600, when it does not exist).

    Raises ``ConfigError`` naming the file when it is missing, readable by others, or not
    32 bytes.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise ConfigError(f"salt file {str(path)!r} does not exist (create one with "
                              "'trustlayer keys generate')", path=str(path))
        try:
            write_private_file(path, new_salt())
        except ConfigError:
            if not path.exists():  # lost a creation race to another process: read theirs
                raise
    if sys.platform != "win32":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"salt file {str(path)!r} has mode {mode:04o}; expected 0600 "
                              f"(run: chmod 600 {path})", path=str(path))
    data = path.read_bytes()
    if len(data) != SALT_BYTES:
        raise ConfigError(f"salt file {str(path)!r} holds {len(data)} bytes, expected {SALT_BYTES}",
                          path=str(path))
    return data
