"""The fault suite: real ``relay serve`` / ``relay worker`` processes and a real Redis that the
tests kill, stop and restart. Each test records the figures an SRE would ask about (recovery
time, duplicates, a healthy subscriber's latency) with ``fault_figures``; pytest prints them
at the end of the run (the hook is in tests/conftest.py, which every run loads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAULT_FIGURE
from tests.faults.harness import RelayStack

Figures = Callable[[str, object], None]


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest) -> Figures:
    # Kept on the test's report (user_properties), which pytest-xdist carries from its
    # workers back to the process that prints the summary (tests/conftest.py).
    def record(name: str, value: object) -> None:
        request.node.user_properties.append((FAULT_FIGURE, (name, str(value))))

    return record


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RelayStack]:
    """Redis with an append-only file, ready to start the relay's processes; all stopped after."""
    with RelayStack(tmp_path) as running:
        yield running
