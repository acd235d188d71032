"""The environment locks a study stores: the first lock under a key is kept for good, on
SQLite and on PostgreSQL; a second coordinator's different lock never replaces it."""

from __future__ import annotations

import hashlib

from wearflow.solutions.environments import lock_key, lock_sha256, requirements_text
from wearflow.state import State

LOCK_A = "numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
LOCK_B = "numpy==2.1.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"


def test_the_first_lock_is_kept(state_url: str) -> None:
    requirements = ["scikit-digital-health==0.17.16"]
    key = lock_key(requirements)
    with State(state_url) as state:
        assert state.locks.get(key) is None
        first = state.locks.keep_first(key, requirements_text(requirements), LOCK_A, "run-1")
        assert (first.lock_text, first.run_id) == (LOCK_A, "run-1")
        assert first.lock_sha256 == lock_sha256(LOCK_A) == hashlib.sha256(
            LOCK_A.encode()).hexdigest()
        # another coordinator resolved the same requirements to other packages meanwhile
        second = state.locks.keep_first(key, requirements_text(requirements), LOCK_B, "run-2")
        assert second == first
        assert state.locks.get(key) == first
        # other requirements, another key, another lock
        other = lock_key(["scikit-digital-health==0.17.18"])
        assert other != key
        assert state.locks.keep_first(other, "x", LOCK_B, "run-2").lock_text == LOCK_B


def test_the_key_names_the_requirements_not_their_order() -> None:
    assert lock_key(["b==1", "a==2"]) == lock_key(["a==2", "b==1", "a==2"])
    assert lock_key(["a==2"]) != lock_key(["a==3"])
    assert requirements_text(["b==1", "a==2"]).splitlines() == sorted(
        {"a==2", "b==1", "numpy", "pandas", "pyarrow"})
