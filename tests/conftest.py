"""Shared fixtures. Tests that need the real TotalSegmentator example skip where it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator_example"


@pytest.fixture(scope="session")
def shared_example_dir() -> Path:
    """The read-only real CT + TotalSegmentator segmentation (present on the project's machines and CI)."""
    if not (SHARED_EXAMPLE / "example_ct_sm.nii.gz").is_file():
        pytest.skip(f"real TotalSegmentator example not found at {SHARED_EXAMPLE} (only on the project's machines)")
    return SHARED_EXAMPLE
