"""Shared fixtures: where the real recordings are, and offline Hugging Face."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from _damaged_cases import make_world

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("BRAINALIGN_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set BRAINALIGN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def layout_cache(tmp_path_factory):
    """One activation cache for the data-layout tests (tests/_layouts.py): their stories are the same words."""
    return tmp_path_factory.mktemp("layout-activations")


@pytest.fixture(scope="session")
def damaged_world(tmp_path_factory):
    """The small simulated dataset and activation cache the damaged-input corpus starts from."""
    return make_world(tmp_path_factory)
