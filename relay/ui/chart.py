"""The Overview's last-hour chart as plain numbers for an inline SVG (no chart library, no
script): stacked bars of attempt outcomes per minute and a line of accepted events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.storage import MinuteStats

WIDTH = 1200
HEIGHT = 160
# The axis labels are HTML beside the SVG (overview_panel.html): text inside a scaled SVG
# shrinks with it, to 6 px at 800 px wide. The plot fills the drawing.
LEFT = 0
BOTTOM = 0
OUTCOMES = ("succeeded", "failed", "dead")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    outcome: str
    label: str  # the <title>: what a hover shows


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    plot_height: int
    bars: list[Bar]
    ingest_points: str  # a polyline's points
    peak: int  # the value at the top of the scale
    totals: dict[str, int]


def _nice_ceiling(value: int) -> int:
    """1, 2, 5, 10, 20, 50...: a scale top people can read."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor:
                return step * factor
        step *= 10


def build(minutes: Sequence[MinuteStats]) -> Chart:
    plot_height = HEIGHT - BOTTOM
    plot_width = WIDTH - LEFT
    tallest = [m.succeeded + m.failed + m.dead for m in minutes] + [m.accepted for m in minutes]
    peak = _nice_ceiling(max([1, *tallest]))
    slot = plot_width / max(len(minutes), 1)
    scale = plot_height / peak
    bars: list[Bar] = []
    points: list[str] = []
    for i, minute in enumerate(minutes):
        x = LEFT + i * slot
        top = float(plot_height)
        counts = {"succeeded": minute.succeeded, "failed": minute.failed, "dead": minute.dead}
        for outcome in OUTCOMES:
            height = counts[outcome] * scale
            if height:
                top -= height
                label = f"{counts[outcome]} {outcome}"
                bars.append(Bar(x + 1, top, max(slot - 2, 1), height, outcome, label))
        points.append(f"{x + slot / 2:.1f},{plot_height - minute.accepted * scale:.1f}")
    totals = {
        "accepted": sum(m.accepted for m in minutes),
        **{o: sum(getattr(m, o) for m in minutes) for o in OUTCOMES},
    }
    return Chart(WIDTH, HEIGHT, LEFT, plot_height, bars, " ".join(points), peak, totals)
