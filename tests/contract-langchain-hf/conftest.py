"""The server under test is the one scripts/contract-test.sh started (INFERD_URL); the
reference vectors and the cosine bar come from tests/contract/recipe_support.py."""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "contract"))


@pytest.fixture(scope="session")
def url():
    return os.environ["INFERD_URL"]
