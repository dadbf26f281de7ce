"""Shared test helpers: where ../shared/data is, and a clear skip when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ABSPOSE_DATA", REPO.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with the reason when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (clone the repo with ../shared beside it, or set ABSPOSE_DATA)")
    return path


TUE_FRAMES = ("2019-05-03-12-41-38", "2019-05-03-12-42-18", "2019-05-03-12-42-25", "2019-05-03-12-42-30",
              "2019-05-03-12-42-34")  # fmt: skip
