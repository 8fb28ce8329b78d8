"""The relay's own sources, as the event lists leave them out, are exactly its own."""

from relay.domain.models import TEST_SOURCE
from relay.domain.ops import INTERNAL_SOURCES, OPS_SOURCE


def test_internal_sources_are_the_test_and_ops_sources() -> None:
    assert {TEST_SOURCE, OPS_SOURCE} == INTERNAL_SOURCES
