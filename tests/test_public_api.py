"""The public surface: everything in ``wearflow.__all__`` exists, and nothing public is missing."""

from __future__ import annotations

import wearflow


def test_all_names_exist_and_are_complete() -> None:
    assert sorted(wearflow.__all__) == wearflow.__all__
    for name in wearflow.__all__:
        assert hasattr(wearflow, name), name
    public = {n for n in vars(wearflow) if not n.startswith("_")
              and not isinstance(getattr(wearflow, n), type(wearflow))}
    assert public <= set(wearflow.__all__), sorted(public - set(wearflow.__all__))
