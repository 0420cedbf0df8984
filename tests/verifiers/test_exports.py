from __future__ import annotations

import inspect

import trustlayer.verifiers as verifiers


def test_all_is_sorted_complete_and_documented() -> None:
    public = {n for n in dir(verifiers) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(verifiers, n)).__name__ == "module"}
    assert sorted(verifiers.__all__) == verifiers.__all__
    assert set(verifiers.__all__) == public - modules
    for name in verifiers.__all__:
        obj = getattr(verifiers, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):  # type aliases carry their docs in the source
            assert (obj.__doc__ or "").strip(), f"verifiers.{name} has no docstring"
