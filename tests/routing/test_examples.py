"""Routing data files: round trip, and errors that name file, line and field but never the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.errors import RouterError
from trustlayer.routing.examples import RoutingDataError, RoutingExample, read_jsonl, write_jsonl
from trustlayer.routing.simulate import simulated_routing_set

ASSETS = Path(__file__).parent.parent / "assets" / "routing"


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    data = simulated_routing_set(50, seed=9)
    assert write_jsonl(tmp_path / "d.jsonl", data) == 50
    assert read_jsonl(tmp_path / "d.jsonl") == data


def test_non_ascii_prompt_round_trips(tmp_path: Path) -> None:
    ex = RoutingExample(prompt="Wie alt ist <PERSON_1>? — 東京", signals={"x": 1}, local_sufficed=False)
    write_jsonl(tmp_path / "d.jsonl", [ex])
    assert read_jsonl(tmp_path / "d.jsonl") == [ex]


@pytest.mark.parametrize(("name", "line", "problem"), [
    ("label_not_boolean.jsonl", 2, r"field 'local_sufficed': Input should be a valid boolean"),
    ("signal_not_finite.jsonl", 3, r"field 'signals': .*signal 'mean_logprob' must be a finite number"),
    ("signal_as_string.jsonl", 1, r"field 'signals.mean_logprob': Input should be a valid number"),
    ("truncated_line.jsonl", 2, r"not valid JSON"),
    ("prompt_missing.jsonl", 1, r"field 'prompt': Field required"),
    ("line_not_object.jsonl", 1, r"expected a JSON object, found list"),
    ("unknown_field.jsonl", 1, r"field 'answer': Extra inputs are not permitted"),
])
def test_bad_file_names_file_line_and_field(name: str, line: int, problem: str) -> None:
    with pytest.raises(RoutingDataError, match=rf"{name}' line {line}: {problem}") as info:
        read_jsonl(ASSETS / name)
    assert info.value.line == line
    assert "secret-prompt-text" not in str(info.value)
    assert isinstance(info.value, RouterError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingDataError, match=r"routing data file .*nope.jsonl' does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_prompt_is_not_in_repr() -> None:
    ex = RoutingExample(prompt="secret-prompt-text", signals={}, local_sufficed=True)
    assert "secret-prompt-text" not in repr(ex)
    assert "secret-prompt-text" not in repr(ex.features)
