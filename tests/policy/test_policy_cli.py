from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.cli import cli

ASSETS = Path(__file__).parent.parent / "assets" / "policy"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def test_check_ok_for_every_shipped_policy() -> None:
    code, out, err = run("check", "default", "eu-gdpr", "hipaa", "pci-dss", "device-only-special")
    assert code == 0, err
    assert out.count("ok: ") == 5 and err == ""


def test_check_reports_file_line_rule_and_exits_1() -> None:
    code, out, err = run("check", str(ASSETS / "policy_undeclared_class.yaml"), "eu-gdpr")
    assert code == 1
    assert "policy_undeclared_class.yaml' line 13: rule 'eu-only' names data class 'eu_personel'" in err
    assert "Traceback" not in err and "ok: " in out  # the good file is still checked


def test_check_warns_on_shadowed_rule_and_strict_fails() -> None:
    path = str(ASSETS / "policy_shadowed_permit.yaml")
    code, _, err = run("check", path)
    assert code == 0 and "warning:" in err and "line 13: rule 'baa-cloud-ok' can never decide" in err
    assert run("check", "--strict", path)[0] == 1


def test_missing_file_is_a_usage_error() -> None:
    code, _, err = run("check", "no-such-policy.yaml")
    assert code == 2 and "does not exist" in err
    assert run("test", "no-such-policy.yaml")[0] == 2


def test_test_runs_embedded_cases() -> None:
    code, out, _ = run("test", "eu-gdpr", "default")
    assert code == 0 and out.strip().endswith("23 passed, 0 failed")
    code, out, _ = run("test", str(ASSETS / "policy_failing_case.yaml"))
    assert code == 1
    assert "FAIL" in out and "policy_failing_case.yaml:22 this expectation is wrong on purpose" in out
    assert "outcome: expected allow, got transform" in out and "1 passed, 1 failed" in out


def test_explain_json_shows_both_decisions() -> None:
    code, out, err = run("explain", "eu-gdpr", "--findings", "EMAIL_ADDRESS,API_KEY", "--to", "gpt-us",
                         "--candidates", "gpt-us,local-llm", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["decision"]["outcome"] == "transform"
    assert data["decision"]["operators"]["API_KEY"] == "pseudonymize"
    assert data["after_transform"]["outcome"] == "allow"


def test_explain_human_output_and_taint() -> None:
    code, out, _ = run("explain", "eu-gdpr", "--findings", "", "--taint", "special_category", "--to", "gpt-us",
                       "--candidates", "gpt-us,local-llm")
    assert code == 0
    assert "reroute" in out and "local-llm" in out and "health-stays-on-device" in out


def test_explain_unknown_endpoint_and_class_are_input_errors() -> None:
    code, _, err = run("explain", "eu-gdpr", "--findings", "PERSON", "--to", "gpt-5")
    assert code == 2 and "endpoint 'gpt-5' is not declared (declared: agent-eu, edge-nodpa" in err
    code, _, err = run("explain", "eu-gdpr", "--findings", "PERSON", "--to", "gpt-us", "--taint", "phi")
    assert code == 2 and "data class 'phi' is not declared" in err


def test_explain_with_config_endpoints(tmp_path: Path) -> None:
    cfg = tmp_path / "trustlayer.yaml"
    cfg.write_text("identity: {id: laptop, key: k.pem}\nendpoints:\n"
                   "  - {id: laptop, kind: device, jurisdiction: FR}\n"
                   "  - {id: claude-us, kind: cloud, jurisdiction: US}\n")
    code, out, err = run("explain", "eu-gdpr", "--findings", "PERSON", "--from", "laptop", "--to", "claude-us",
                         "--config", str(cfg), "--json")
    assert code == 0, err
    assert json.loads(out)["decision"]["rule_ids"] == ["eu-transfer-pseudonymized", "processor-without-dpa"]


def test_prove_claims() -> None:
    code, out, _ = run("prove", "default", "--never", "secrets:cloud", "--never", "health:agent")
    assert code == 0
    assert "PROVED: secrets never reaches a cloud endpoint in raw form" in out
    code, out, _ = run("prove", "default", "--strict", "--never", "secrets:cloud")
    assert code == 1 and "VIOLATED: secrets can reach" in out
    code, out, _ = run("prove", "eu-gdpr", "--never", "eu_personal:cloud")
    assert code == 1 and "VIOLATED: eu_personal can reach" in out
    code, _, err = run("prove", "eu-gdpr", "--never", "nonsense")
    assert code == 2 and "expected CLASS:KIND" in err


@pytest.mark.parametrize("name", ["eu-gdpr", "pci-dss"])
def test_export_cedar_parses(name: str) -> None:
    cedarpy = pytest.importorskip("cedarpy")
    code, out, _ = run("export", name, "--format", "cedar")
    assert code == 0 and '@id("default")' in out
    assert cedarpy.format_policies(out)  # Cedar's own parser accepts it


@pytest.mark.slow
def test_text_cases_and_explain_use_the_real_detector() -> None:
    code, out, err = run("test", "-v", str(ASSETS / "policy_text_cases.yaml"))
    assert code == 0, out + err
    assert "3 passed, 0 failed" in out
    code, out, err = run("explain", "eu-gdpr", "--text", "Mail anna.schmidt@example.de about MRN 12345678",
                         "--to", "gpt-us", "--candidates", "gpt-us,local-llm", "--json")
    assert code == 0, err
    decision = json.loads(out)["decision"]
    assert decision["outcome"] == "reroute" and decision["endpoint"] == "local-llm"
    assert "anna" not in out and "12345678" not in out  # reasons and output carry no content


def test_text_case_without_a_detector_is_reported() -> None:
    from trustlayer.policy import PolicyEngine
    from trustlayer.policy.cases import run_cases

    results = run_cases(PolicyEngine.from_file(ASSETS / "policy_text_cases.yaml"))
    assert not results[0].passed
    assert "gives 'text', which needs a detector" in results[0].problems[0]


def test_unknown_policy_name_lists_the_shipped_ones() -> None:
    for command in ("check", "test", "prove", "export"):
        code, _, err = run(command, "eu_gdpr")
        assert code == 2 and "no shipped policy named 'eu_gdpr' (shipped: default," in err, command
