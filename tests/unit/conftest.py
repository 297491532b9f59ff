from __future__ import annotations

import pytest

from tests.unit.fakes import FakeStore


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()
