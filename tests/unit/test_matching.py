from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from relay.domain.matching import wants


@dataclass
class Sub:
    sources: list[str]
    event_types: list[str] = field(default_factory=lambda: ["*"])
    enabled: bool = True


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "push", True),
        (["*"], None, True),
        (["push"], "push", True),
        (["push"], "pushed", False),
        (["pull_request.*"], "pull_request.opened", True),
        (["pull_request.*"], "pull_request", False),
        (["pull_request.*"], "Pull_Request.opened", False),  # case matters
        (["issues", "invoice.*"], "invoice.paid", True),
        (["invoice.pa?d"], "invoice.paid", True),
        (["push"], None, False),
    ],
)
def test_event_type_globs(patterns: list[str], event_type: str | None, expected: bool) -> None:
    assert wants(Sub(["github"], patterns), "github", event_type) is expected


def test_source_must_match_or_be_wildcard() -> None:
    assert wants(Sub(["github"]), "github", "push")
    assert not wants(Sub(["github"]), "stripe", "push")
    assert wants(Sub(["*"]), "stripe", "push")


def test_disabled_subscription_wants_nothing() -> None:
    assert not wants(Sub(["*"], enabled=False), "github", "push")
