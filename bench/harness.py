"""Timing harness: interleaved rounds, medians, and ratios taken within one run.

These machines are shared and noisy (±15 % between runs), so every
configuration is measured in the same process, round-robin, several times, and
only ratios between figures of the same run are reported.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

#: A prepared request: calling it performs one request and returns its status.
Call = Callable[[], int]


@dataclass
class Case:
    """One configuration under test: a name, a group, and a zero-argument request."""

    name: str
    call: Call
    group: str = "auth"
    expect: int = 200
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        """Median time of one request, in microseconds."""
        return statistics.median(self.samples) * 1e6


def check(case: Case) -> None:
    """Fail loudly if a configuration does not answer as expected (a broken bench measures nothing)."""
    status = case.call()
    if status != case.expect:
        raise SystemExit(f"bench case {case.name!r} answered {status}, expected {case.expect}")


def measure(cases: list[Case], *, requests: int, rounds: int, warmup: int = 200) -> None:
    """Time ``requests`` calls of each case per round, interleaving cases, for ``rounds`` rounds."""
    for case in cases:
        check(case)
        for _ in range(warmup):
            case.call()
    for _ in range(rounds):
        for case in cases:
            call = case.call
            start = time.perf_counter()
            for _ in range(requests):
                call()
            case.samples.append((time.perf_counter() - start) / requests)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def environment() -> str:
    """Date, machine and the versions that matter, for the results file."""
    versions = []
    for name in ("flask", "werkzeug", "flask-limiter", "limits", "pyjwt", "cryptography", "redis", "flask-httpauth"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · "
        f"{platform.machine()} · {_cpu()} · " + ", ".join(versions)
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(cases: list[Case], *, bare: str, peer: str) -> list[str]:
    """Markdown rows: req/s, µs per request, µs added over bare, and ratios to bare and to the peer."""
    by_name = {c.name: c for c in cases}
    bare_us = by_name[bare].median_us
    peer_added = by_name[peer].median_us - bare_us
    rows = [
        "| configuration | req/s | µs/request | added µs | throughput vs bare | added vs peer | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in cases:
        us = case.median_us
        added = us - bare_us
        vs_peer = "—" if case.name in (bare, peer) or peer_added <= 0 else f"{added / peer_added:.2f}×"
        rows.append(
            f"| {case.name} | {1e6 / us:,.0f} | {us:.1f} | {added:+.1f} | {bare_us / us:.2f} | {vs_peer} | {case.note} |"
        )
    return rows


def write_results(path: Path, sections: list[tuple[str, list[str]]], command: str) -> None:
    """Write the results file (overwritten each run; never edited by hand)."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; do not edit by hand.",
        "",
        f"- when and where: {environment()}",
        f"- command: `{command}`",
        "- method: requests through Flask's test client, every configuration in the same process, "
        "interleaved round-robin, median of the rounds. Ratios compare figures of this same run.",
        "",
    ]
    for title, rows in sections:
        lines += [f"## {title}", "", *rows, ""]
    path.write_text("\n".join(lines))


def log(*parts: Any) -> None:
    """Progress to stderr, so stdout keeps only the tables."""
    print(*parts, file=sys.stderr, flush=True)
