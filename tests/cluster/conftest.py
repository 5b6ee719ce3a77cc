"""Fixtures of the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster.external import external_cluster


@pytest.fixture
def external_scheduler(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-thread workers started without any ModelOps preload."""
    with external_cluster(tmp_path) as cluster:
        yield cluster.address
