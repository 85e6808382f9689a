"""Shared fixtures: the real files in ../shared/fixtures (never copied into the project).
Tests that need them skip with a reason when that folder is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
FIXTURES = SHARED / "fixtures"
REFERENCE = SHARED / "reference"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (tests with real fixtures need ../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _require(FIXTURES / "models")


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    from facebatch.engines.pipeline.preprocess import image_files

    return image_files(_require(FIXTURES / "images"))


@pytest.fixture(scope="session")
def keys_dir() -> Path:
    return _require(REFERENCE / "scrfd_keys")
