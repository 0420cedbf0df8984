from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer import ConfigError, load_config

ASSETS = Path(__file__).parent / "assets" / "config"


def test_good_config_loads_and_resolves_paths() -> None:
    cfg = load_config(ASSETS / "good.yaml")
    assert cfg.me.jurisdiction == "DE" and cfg.endpoint("cloud").url == "http://127.0.0.1:9/v1"
    assert cfg.resolve(cfg.identity.key) == ASSETS / "keys" / "phone.key"


@pytest.mark.parametrize("name,pattern,line,field", [
    ("config_yaml_syntax.yaml", r"line 5: YAML syntax error", 5, None),
    ("config_unknown_field.yaml", r"line 9, field endpoints\[0\]\.jurisdicton_typo: unknown field 'jurisdicton_typo'",
     9, "endpoints[0].jurisdicton_typo"),
    ("config_wrong_type.yaml", r"line 10, field audit\.checkpoint_every: Input should be a valid integer",
     10, "audit.checkpoint_every"),
    ("config_undeclared_endpoint.yaml",
     r"line 10, field proxy\.upstream: names endpoint 'clowd', which is not declared \(declared: phone\)",
     10, "proxy.upstream"),
    ("config_duplicate_endpoint.yaml", r"line 9, field endpoints\[1\]\.id: endpoint id 'phone' is declared twice",
     9, "endpoints[1].id"),
    ("config_bad_kind.yaml",
     r"line 7, field endpoints\[0\]\.kind: Input should be 'device', 'edge', 'cloud' or 'agent'",
     7, "endpoints[0].kind"),
    ("config_not_mapping.yaml", r"expected a mapping at the top level, found str", 1, None),
    ("config_empty.yaml", r"is empty", None, None),
])
def test_bad_config_gives_one_clear_error(name: str, pattern: str, line: int | None, field: str | None) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(ASSETS / name)
    assert name in str(info.value)
    assert info.value.line == line and info.value.field == field


def test_missing_file_and_missing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope\.yaml' does not exist"):
        load_config(ASSETS / "nope.yaml")
    monkeypatch.delenv("TRUSTLAYER_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"TRUSTLAYER_CONFIG is not set"):
        load_config()
    monkeypatch.setenv("TRUSTLAYER_CONFIG", str(ASSETS / "good.yaml"))
    assert load_config().identity.id == "phone"


def test_unknown_endpoint_lookup_names_declared_ones() -> None:
    cfg = load_config(ASSETS / "good.yaml")
    with pytest.raises(ConfigError, match=r"'gpt' is not declared in the config \(declared: phone, cloud\)"):
        cfg.endpoint("gpt")
