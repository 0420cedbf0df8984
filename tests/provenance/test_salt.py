import stat
from pathlib import Path

import pytest

from trustlayer.errors import ConfigError
from trustlayer.provenance.salt import SALT_BYTES, load_salt


def test_create_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "record.salt"
    salt = load_salt(path, create=True)
    assert len(salt) == SALT_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_salt(path) == salt


def test_missing_wrong_size_and_open_mode(tmp_path: Path) -> None:
    path = tmp_path / "record.salt"
    with pytest.raises(ConfigError, match="does not exist"):
        load_salt(path)
    path.write_bytes(b"x" * 5)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="holds 5 bytes, expected 32"):
        load_salt(path)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="mode 0640"):
        load_salt(path)
