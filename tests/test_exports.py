"""The public API is exactly trustlayer.__all__: complete, sorted, and importable."""

from __future__ import annotations

import trustlayer


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(trustlayer) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(trustlayer, name)).__name__ == "module"}
    assert sorted(trustlayer.__all__, key=lambda n: (n.lower(), n)) == trustlayer.__all__
    assert set(trustlayer.__all__) == public - modules


def test_every_exported_item_has_a_docstring() -> None:
    for name in trustlayer.__all__:
        obj = getattr(trustlayer, name)
        assert (obj.__doc__ or "").strip(), f"trustlayer.{name} has no docstring"
