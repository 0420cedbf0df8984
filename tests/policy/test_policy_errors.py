from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.errors import PolicyError
from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.policy.analysis import shadowed

ASSETS = Path(__file__).parent.parent / "assets" / "policy"


@pytest.mark.parametrize(("name", "pattern"), [
    ("policy_unknown_entity.yaml",
     r"policy_unknown_entity\.yaml' line 6: data class 'eu_personal' names entity type 'EMAIL_ADRESS', which no "
     r"detector emits \(did you mean 'EMAIL_ADDRESS'\?"),
    ("policy_undeclared_class.yaml",
     r"policy_undeclared_class\.yaml' line 13: rule 'eu-only' names data class 'eu_personel', which is not "
     r"declared \(declared: eu_personal, phi\)"),
    ("policy_wrong_type.yaml",
     r"policy_wrong_type\.yaml' line 11, field rules\[0\]\.obligations\.route_local: Input should be a valid "
     r"boolean.*\(rule 'secrets-local'\)"),
    ("policy_duplicate_rule_id.yaml",
     r"policy_duplicate_rule_id\.yaml' line 13: rule id 'secrets-pseudonymized' is used twice \(first at line 8\)"),
    ("policy_unknown_field.yaml",
     r"line 11, field rules\[0\]\.obligations\.pseudonymise: unknown field 'pseudonymise' "
     r"\(rule 'secrets-pseudonymized'\)"),
    ("policy_norway_unquoted.yaml",
     r"line 5, field jurisdictions\.eea\[2\]: found the boolean False: YAML reads a bare NO"),
    ("policy_undeclared_group.yaml",
     r"line 12: rule 'eea-only' names jurisdiction group 'adequacy', which is not declared \(declared: eea\)"),
    ("policy_permit_with_transform.yaml",
     r"line 11, field rules\[0\]\.obligations: rule 'cloud-pseudonymized' is a permit; only a forbid can demand"),
    ("policy_duplicate_key.yaml", r"policy_duplicate_key\.yaml' line 7: key 'personal' is given twice"),
])
def test_bad_policy_files_name_file_line_and_rule(name: str, pattern: str) -> None:
    with pytest.raises(PolicyError, match=pattern) as info:
        PolicyEngine.from_file(ASSETS / name)
    assert info.value.path is not None and info.value.path.endswith(name)
    assert info.value.line is not None


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("version: 1\nname: x\nclasses: {a: [\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml' line \d+: YAML syntax error"):
        PolicyEngine.from_file(f)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"policy file '.*nope\.yaml' does not exist"):
        PolicyEngine.from_file(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(PolicyError, match=r"empty\.yaml' is empty"):
        PolicyEngine.from_file(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PolicyError, match=r"expected a mapping at the top level, found list"):
        PolicyEngine.from_file(tmp_path / "list.yaml")


def test_route_local_with_a_transform_is_rejected(tmp_path: Path) -> None:
    text = (ASSETS / "policy_wrong_type.yaml").read_text().replace(
        "{route_local: sometimes}", "{route_local: true, pseudonymize: [secrets]}")
    f = tmp_path / "both.yaml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=r"rule 'secrets-local' demands both 'route_local' and a transform"):
        PolicyEngine.from_file(f)


def test_shadowed_permit_is_a_warning_naming_the_rule_and_line() -> None:
    engine = PolicyEngine.from_file(ASSETS / "policy_shadowed_permit.yaml")
    warnings = shadowed(engine)
    assert [(w.rule, w.line) for w in warnings] == [("baa-cloud-ok", 13)]
    assert "'phi-never-leaves' forbids first" in warnings[0].message


def test_rule_that_matches_no_endpoint_is_a_warning(tmp_path: Path) -> None:
    text = (ASSETS / "policy_failing_case.yaml").read_text().replace(
        "to: {kind: cloud}", "to: {kind: device, has: [baa], lacks: [baa]}")
    f = tmp_path / "never.yaml"
    f.write_text(text)
    warnings = shadowed(PolicyEngine.from_file(f))
    assert len(warnings) == 1 and "can never fire" in warnings[0].message


@pytest.mark.parametrize("name", ["default", "eu-gdpr", "hipaa", "pci-dss", "device-only-special"])
def test_shipped_policies_have_no_warnings(name: str) -> None:
    assert shadowed(PolicyEngine.from_file(shipped_policy_path(name))) == []


def test_unknown_shipped_policy_lists_the_shipped_ones() -> None:
    with pytest.raises(PolicyError, match=r"no shipped policy named 'eu_gdpr' \(shipped: default, "
                                          r"device-only-special, eu-gdpr, hipaa, pci-dss\)"):
        shipped_policy_path("eu_gdpr")


def test_forbid_whose_transform_misses_its_trigger_is_a_warning() -> None:
    engine = PolicyEngine.from_file(ASSETS / "policy_transform_misses_trigger.yaml")
    warnings = shadowed(engine)
    assert [(w.rule, w.line) for w in warnings] == [("phi-pseudonymize-wrong-class", 9)]
    assert "always blocks: its transform does not remove every class" in warnings[0].message
