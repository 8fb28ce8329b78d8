"""The fault suite: real ``relay serve`` / ``relay worker`` processes and a real Redis that the
tests kill, stop and restart. Each test records the figures an SRE would ask about (recovery
time, duplicates, a healthy subscriber's latency) with ``fault_figures``; pytest prints them
at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import RelayStack

_FIGURES: list[tuple[str, str, str]] = []

Figures = Callable[[str, object], None]


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest) -> Figures:
    def record(name: str, value: object) -> None:
        _FIGURES.append((request.node.name, name, str(value)))

    return record


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RelayStack]:
    """Redis with an append-only file, ready to start the relay's processes; all stopped after."""
    with RelayStack(tmp_path) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault figures")
    for test, name, value in _FIGURES:
        terminalreporter.write_line(f"{test}: {name} = {value}")
