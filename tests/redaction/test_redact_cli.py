"""``trustlayer redact`` through the real root CLI, the real policy engine and the shipped policies."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trustlayer.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_text_mode_prints_redacted_text_and_a_table_without_values(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["redact", "--no-ner"], input=b"mail ada@example.org, key AKIAIOSFODNN7EXAMPLE\n")
    assert result.exit_code == 0, result.output
    assert "ada@example.org" not in result.stdout and "AKIAIOSFODNN7EXAMPLE" not in result.stdout
    assert result.stdout.startswith("mail <EMAIL_ADDRESS_")
    assert "EMAIL_ADDRESS" in result.stderr and "API_KEY" in result.stderr
    assert "ada@example.org" not in result.stderr


def test_jsonl_keeps_other_fields_and_lists_findings(runner: CliRunner) -> None:
    lines = [
        {"id": 1, "text": "call +44 20 7946 0958 please"},
        {"id": 2, "messages": [{"role": "user", "content": "I'm at 10.1.2.3"}], "meta": {"k": "v"}},
    ]
    data = "\n".join(json.dumps(x) for x in lines) + "\n"
    result = runner.invoke(cli, ["redact", "--jsonl", "--no-ner"], input=data.encode())
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [1, 2] and out[1]["meta"] == {"k": "v"}
    assert "+44 20 7946 0958" not in out[0]["text"] and "10.1.2.3" not in json.dumps(out[1])
    assert out[0]["findings"][0]["entity_type"] == "PHONE_NUMBER"
    assert set(out[1]["findings"][0]) == {"entity_type", "path", "start", "end", "score", "detector", "validated"}
    assert out[1]["findings"][0]["path"] == "turns[0].content"


def test_policy_for_the_device_leaves_text_alone(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["redact", "--no-ner", "--policy", "default", "--to", "local-llm"],
                           input=b"mail ada@example.org\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "mail ada@example.org\n"


def test_policy_reroute_exits_1_and_still_prints_nothing_raw(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["redact", "--no-ner", "--to", "cloud-llm"],
                           input=b"NHS number 943 476 5919, mail ada@example.org\n")
    assert result.exit_code == 1, result.output
    assert "943 476 5919" not in result.stdout and "ada@example.org" not in result.stdout
    assert "reroute" in result.stderr and "health-stays-on-device" in result.stderr


@pytest.mark.parametrize(("args", "data", "message"), [
    (["--jsonl"], b'{"text": "x"}\nnot json\n', r"stdin line 2: not valid JSON"),
    (["--jsonl"], b'["a"]\n', r"stdin line 1: expected a JSON object, found list"),
    (["--jsonl"], b'{"id": 3}\n', r"stdin line 1: expected exactly one of the fields 'text' and 'messages'"),
    (["--jsonl"], b'{"text": 5}\n', r"stdin line 1: field 'text' must be a string, found int"),
    (["--jsonl"], b'{"messages": [{"role": "boss", "content": "ada@example.org"}]}\n',
     r"stdin line 1: messages\[0\]\.role: Input should be"),
    (["--jsonl"], b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", '
                  b'"function": {"name": "f", "arguments": "{bad"}}]}]}\n',
     r"stdin line 1: turns\[0\]\.tool_calls\[0\]\.function\.arguments: tool-call arguments are not valid JSON"),
    # Fields redaction does not inspect would be written back in clear: a legacy function_call, a refusal,
    # an extra key of a text part, a tool call or its function.
    (["--jsonl"], b'{"messages": [{"role": "assistant", "function_call": {"name": "send", '
                  b'"arguments": "{\\"to\\": \\"ada@example.org\\"}"}}]}\n',
     r"stdin line 1: messages\[0\]\.'function_call' is a field redaction does not inspect"),
    (["--jsonl"], b'{"messages": [{"role": "assistant", "content": "no", "refusal": "not for ada@example.org"}]}\n',
     r"stdin line 1: messages\[0\]\.'refusal' is a field"),
    (["--jsonl"], b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", '
                  b'"ada@example.org": 1}]}]}\n',
     r"stdin line 1: messages\[0\]\.content\[0\]\.\(a name that is not shown\) is a field"),
    (["--jsonl"], b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", '
                  b'"note": "ada@example.org", "function": {"name": "f", "arguments": "{}"}}]}]}\n',
     r"stdin line 1: messages\[0\]\.tool_calls\[0\]\.'note' is a field"),
    (["--jsonl"], b'{"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", '
                  b'"function": {"name": "f", "arguments": "{}", "input": "ada@example.org"}}]}]}\n',
     r"stdin line 1: messages\[0\]\.tool_calls\[0\]\.function\.'input' is a field"),
    ([], b"caf\xe9 ada@example.org\n", r"stdin is not valid UTF-8: line 1, byte offset 3"),
    (["--to", "mars"], b"x", r"--to 'mars' is not an endpoint of policy default.yaml \(declared: "),
    (["--policy", "nope.yaml"], b"x", r"nope.yaml"),
])
def test_bad_input_is_one_line_exit_2_without_raw_values(runner: CliRunner, args: list[str], data: bytes,
                                                         message: str) -> None:
    result = runner.invoke(cli, ["redact", "--no-ner", *args], input=data)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(message, result.stderr), result.stderr
    assert "ada@example.org" not in result.stderr and "ada@example.org" not in result.stdout


ASSETS = __import__("pathlib").Path(__file__).resolve().parents[1] / "assets" / "redaction"


@pytest.mark.parametrize(("asset", "args", "message"), [
    ("stdin_invalid_utf8.txt", [], r"stdin is not valid UTF-8: line 1, byte offset 13"),
    ("jsonl_tool_args_invalid_json.jsonl", ["--jsonl"], r"stdin line 1: .*arguments: tool-call arguments are not "
                                                        r"valid JSON \(line 1 column 27"),
    ("jsonl_tool_args_nested_200.jsonl", ["--jsonl"], r"stdin line 1: .*nest 200 levels deep; at most 64"),
    ("jsonl_not_an_object.jsonl", ["--jsonl"], r"stdin line 2: expected a JSON object, found list"),
    ("jsonl_missing_text.jsonl", ["--jsonl"], r"stdin line 1: expected exactly one of the fields 'text' and"),
])
def test_bad_input_files(runner: CliRunner, asset: str, args: list[str], message: str) -> None:
    import re

    result = runner.invoke(cli, ["redact", "--no-ner", *args], input=(ASSETS / asset).read_bytes())
    assert result.exit_code == 2 and re.search(message, result.stderr), result.stderr
    assert "ada@example.org" not in result.output and "juergen@example.de" not in result.output


def test_typed_placeholder_file_passes_through_and_email_is_redacted(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["redact", "--no-ner"], input=(ASSETS / "text_typed_placeholder.txt").read_bytes())
    assert result.exit_code == 0
    assert "<PERSON_1a2b3c>" in result.stdout and "ada@example.org" not in result.stdout
