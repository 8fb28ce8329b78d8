"""The dashboard's pure parts: times, bodies and the last-hour chart, with plain values."""

from __future__ import annotations

import json

from relay.storage import MinuteStats
from relay.ui import chart, format


def test_times_are_utc_and_relative() -> None:
    assert format.when(1_795_543_718_174) == "2026-11-24 18:08:38 UTC"
    assert format.when(None) == "—"
    assert format.relative(10_000, 70_000) == "1 min ago"
    assert format.relative(75_000, 70_000) == "in 5 s"
    assert format.relative(70_400, 70_000) == "now"


def test_json_bodies_are_indented_and_others_kept() -> None:
    text, cut = format.pretty_body(b'{"a":[1,"<b>"]}', "application/json; charset=utf-8")
    assert (json.loads(text), cut) == ({"a": [1, "<b>"]}, False)
    assert text.startswith('{\n  "a"')
    assert format.pretty_body(b"{broken", "application/json") == ("{broken", False)
    assert format.pretty_body(b"\xff<x>", "text/plain") == ("\ufffd<x>", False)


def test_deep_json_is_shown_as_sent() -> None:
    for depth in (900, 1001, 100_000):  # deeper than Python recurses, or quadratic to indent
        body = b"[" * depth + b"]" * depth
        text, cut = format.pretty_body(body, "application/json")
        assert (text, cut) == (body[: format.BODY_PREVIEW_BYTES].decode(), depth == 100_000)
    text, _ = format.pretty_body(b"[" * 100 + b"]" * 100, "application/json")
    assert text.startswith("[\n  [\n    [")  # shallow enough: indented


def test_long_bodies_are_cut() -> None:
    text, cut = format.pretty_body(b"a" * (format.BODY_PREVIEW_BYTES + 1), "application/json")
    assert cut
    assert len(text) == format.BODY_PREVIEW_BYTES


def minute(i: int, accepted: int = 0, ok: int = 0, failed: int = 0, dead: int = 0) -> MinuteStats:
    return MinuteStats(i * 60_000, accepted, ok, failed, dead)


def test_chart_stacks_outcomes_on_a_readable_scale() -> None:
    built = chart.build([minute(0, accepted=3, ok=2, failed=1), minute(1), minute(2, dead=7)])
    assert built.peak == 10  # 7 at most: the next of 1, 2, 5, 10...
    assert built.totals == {"accepted": 3, "succeeded": 2, "failed": 1, "dead": 7}
    assert [(b.outcome, b.label) for b in built.bars] == [
        ("succeeded", "2 succeeded"),
        ("failed", "1 failed"),
        ("dead", "7 dead"),
    ]
    ok, failed, dead = built.bars
    assert failed.y + failed.height == ok.y  # stacked: failed sits on succeeded
    assert ok.y + ok.height == built.plot_height
    assert dead.height == built.plot_height * 7 / 10
    assert len(built.ingest_points.split()) == 3


def test_an_idle_hour_draws_no_bars() -> None:
    built = chart.build([minute(i) for i in range(60)])
    assert built.bars == []
    assert built.peak == 1
