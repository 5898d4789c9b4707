"""The geometry of a key's usage chart: stacked bars per hour or per day, drawn as server-side SVG.

Only numbers are computed here (where each bar goes and how tall it is); the
template ``gridauth/_usage_chart.html`` writes the ``<svg>``. No script and no
``style`` attribute is involved, so the dashboard's CSP stays as strict: the
colours are SVG presentation attributes (``fill``), which the stylesheet may
override through the classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

#: The three outcomes a bucket counts, bottom to top of a bar: (field, legend label, fill colour).
SERIES: tuple[tuple[str, str, str], ...] = (
    ("allowed", "Allowed", "#1e7a3c"),
    ("forbidden", "Forbidden (403)", "#b3261e"),
    ("rate_limited", "Rate-limited (429)", "#b07d00"),
)
#: The SVG's size in user units (it scales down with the page through the stylesheet).
WIDTH, HEIGHT = 720, 250
#: Room around the plot for the axis labels.
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 48
#: Share of each bucket's slot its bar fills.
BAR_SHARE = 0.7
#: At most this many labels under the x axis.
MAX_TICKS = 12

Unit = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One outcome's segment of a bucket's stacked bar."""

    series: str
    value: int
    x: float
    y: float
    width: float
    height: float
    fill: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """One hour or day: its counts, its label, and its segments (only the non-zero ones)."""

    label: str
    tick: str | None
    counts: Mapping[str, int]
    bars: tuple[Bar, ...]
    center: float

    @property
    def total(self) -> int:
        """Every request of the bucket."""
        return sum(self.counts.values())

    def describe(self) -> str:
        """The bucket in words, for its ``<title>`` and the table."""
        allowed, forbidden, limited = (self.counts[name] for name, _, _ in SERIES)
        return f"{self.label}: {allowed} allowed, {forbidden} forbidden, {limited} rate-limited"


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template needs to draw the chart and its text summary."""

    unit: Unit
    buckets: tuple[Bucket, ...]
    y_ticks: tuple[tuple[float, int], ...]
    totals: Mapping[str, int]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        """Every request of the window."""
        return sum(self.totals.values())

    @property
    def busiest(self) -> Bucket | None:
        """The bucket with the most requests (the earliest of equals), or ``None`` if there were none."""
        best = max(self.buckets, key=lambda b: b.total, default=None)
        return best if best is not None and best.total > 0 else None

    @property
    def series(self) -> tuple[tuple[str, str, str], ...]:
        """The outcomes, for the legend."""
        return SERIES


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    power: int = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _grouped(buckets: Iterable[Mapping[str, Any]], unit: Unit) -> list[tuple[datetime, dict[str, int]]]:
    """The usage report's hourly buckets, as they are (``hour``) or added up per UTC date (``day``)."""
    groups: dict[str, tuple[datetime, dict[str, int]]] = {}
    for bucket in buckets:
        start = datetime.fromisoformat(str(bucket["start"]))
        key = start.strftime("%Y-%m-%dT%H" if unit == "hour" else "%Y-%m-%d")
        _, counts = groups.setdefault(key, (start, {name: 0 for name, _, _ in SERIES}))
        for name, _, _ in SERIES:
            counts[name] += int(bucket[name])
    return list(groups.values())


def _tick(start: datetime, unit: Unit, index: int, every: int) -> str | None:
    if unit == "hour":
        return start.strftime("%H:00") if start.hour % max(every, 1) == 0 else None
    return start.strftime("%m-%d") if index % every == 0 else None


def usage_chart(buckets: Iterable[Mapping[str, Any]], unit: Unit) -> Chart:
    """The chart of a usage report's ``buckets`` (oldest first), one bar per hour or per UTC day."""
    groups = _grouped(buckets, unit)
    plot_w, plot_h = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    scale = nice_ceiling(max((sum(c.values()) for _, c in groups), default=0))
    slot = plot_w / max(len(groups), 1)
    every = 6 if unit == "hour" else max(1, math.ceil(len(groups) / MAX_TICKS))
    drawn = []
    totals = {name: 0 for name, _, _ in SERIES}
    for index, (start, counts) in enumerate(groups):
        x = LEFT + index * slot + slot * (1 - BAR_SHARE) / 2
        base = float(HEIGHT - BOTTOM)
        bars = []
        for name, _, fill in SERIES:
            totals[name] += counts[name]
            if counts[name] == 0:
                continue
            height = counts[name] / scale * plot_h
            base -= height
            bars.append(
                Bar(name, counts[name], round(x, 2), round(base, 2), round(slot * BAR_SHARE, 2), round(height, 2), fill)
            )
        label = start.strftime("%Y-%m-%d %H:00 UTC" if unit == "hour" else "%Y-%m-%d (UTC)")
        drawn.append(
            Bucket(label, _tick(start, unit, index, every), counts, tuple(bars), round(LEFT + (index + 0.5) * slot, 2))
        )
    ticks = (0, scale // 2, scale) if scale % 2 == 0 else (0, scale)
    y_ticks = tuple((round(HEIGHT - BOTTOM - t / scale * plot_h, 2), t) for t in ticks)
    return Chart(unit=unit, buckets=tuple(drawn), y_ticks=y_ticks, totals=totals)


__all__ = ["SERIES", "Bar", "Bucket", "Chart", "nice_ceiling", "usage_chart"]
