"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
# The real-world corpus lives beside the checkout (../shared/corpus), in development and in CI.
CORPUS_DIR = REPO_DIR.parent / "shared" / "corpus"
SAMPLES_DIR = REPO_DIR / "samples"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.fail(f"corpus folder {CORPUS_DIR} is missing: check out the project beside shared/")
    return CORPUS_DIR


def corpus_files(pattern: str = "*") -> list[Path]:
    """Corpus files matching a glob, for parametrising tests at collection time."""
    return sorted(path for path in CORPUS_DIR.glob(pattern) if path.name != "README.md")
