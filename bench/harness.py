"""Timing harness: interleaved rounds, medians, and ratios taken within one run.

These machines are shared and noisy (±15 % between runs), so every
configuration is measured in the same process, round-robin, several times, and
only ratios between figures of the same run are reported.
"""

from __future__ import annotations

import gc
import os
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
    """One configuration under test: a name, a group, and a zero-argument request.

    ``prepare(n)`` runs untimed before each round with the number of calls to
    come (signed requests sign them there). ``base`` names the case whose time
    is subtracted to give the cost this one adds.
    """

    name: str
    call: Call
    group: str = "auth"
    expect: int = 200
    note: str = ""
    base: str = ""
    prepare: Callable[[int], None] | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        """Median time of one request, in microseconds."""
        return statistics.median(self.samples) * 1e6

    @property
    def spread(self) -> float:
        """Half the range of the rounds, relative to the median: how noisy this figure was."""
        return (max(self.samples) - min(self.samples)) / 2 / statistics.median(self.samples)


def check(case: Case) -> None:
    """Fail loudly if a configuration does not answer as expected (a broken bench measures nothing)."""
    if case.prepare is not None:
        case.prepare(1)
    status = case.call()
    if status != case.expect:
        raise SystemExit(f"bench case {case.name!r} answered {status}, expected {case.expect}")


def measure(cases: list[Case], *, requests: int, rounds: int, warmup: int = 200) -> None:
    """Time ``requests`` calls of each case per round, for ``rounds`` rounds.

    Cases are interleaved, and each round starts one case later than the one
    before, so a slow patch of the machine spreads over every configuration.
    A collection runs before each timed block so no case pays for another's garbage.
    """
    for case in cases:
        check(case)
        if case.prepare is not None:
            case.prepare(warmup)
        for _ in range(warmup):
            if case.call() != case.expect:
                raise SystemExit(f"bench case {case.name!r} failed during warm-up")
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for case in order:
            if case.prepare is not None:
                case.prepare(requests)
            call, expect, wrong = case.call, case.expect, 0
            gc.collect()
            start = time.perf_counter()
            for _ in range(requests):
                if call() != expect:
                    wrong += 1
            case.samples.append((time.perf_counter() - start) / requests)
            if wrong:
                raise SystemExit(f"bench case {case.name!r}: {wrong} of {requests} answers were not {expect}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


VERSIONS = (
    "flask",
    "werkzeug",
    "flask-limiter",
    "limits",
    "pyjwt",
    "cryptography",
    "redis",
    "flask-httpauth",
    "flask-jwt-extended",
    "gunicorn",
)


def environment() -> list[str]:
    """Date, machine, load and the versions that matter, for the results file."""
    versions = []
    for name in VERSIONS:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {_cpu()}, {os.cpu_count()} CPUs, load average at the end {load}",
        f"- Python {platform.python_version()}; " + ", ".join(versions),
    ]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(cases: list[Case], *, peer: str) -> list[str]:
    """Markdown rows: req/s, µs per request, µs added over its bare route, and ratios to bare and to the peer."""
    by_name = {c.name: c for c in cases}
    peer_case = by_name[peer]
    peer_added = peer_case.median_us - by_name[peer_case.base].median_us
    rows = [
        "| configuration | req/s | µs/request | added µs | throughput vs bare | added vs Flask-HTTPAuth | ± | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in cases:
        us = case.median_us
        if case.base:
            base_us = by_name[case.base].median_us
            added = us - base_us
            added_text, ratio = f"{added:+.1f}", f"{base_us / us:.2f}"
            vs_peer = "—" if case.name == peer or peer_added <= 0 else f"{added / peer_added:.2f}×"
        else:
            added_text, ratio, vs_peer = "—", "1.00", "—"
        rows.append(
            f"| {case.name} | {1e6 / us:,.0f} | {us:.1f} | {added_text} | {ratio} | {vs_peer} "
            f"| {case.spread * 100:.0f} % | {case.note} |"
        )
    return rows


def unit_table(cases: list[Case]) -> list[str]:
    """Markdown rows of the unit figures (one library call each), in µs."""
    rows = ["| unit | µs/call | ± |", "| --- | ---: | ---: |"]
    rows += [f"| {c.name} | {c.median_us:.1f} | {c.spread * 100:.0f} % |" for c in cases]
    return rows


#: Sections of the results file that other scripts write (``bench/scale.py``): a run of ``bench/run.py`` keeps them.
OTHER_SECTIONS = ("## Past one machine",)


def write_results(path: Path, header: list[str], sections: list[tuple[str, list[str]]]) -> None:
    """Write the results file (its own sections overwritten each run; never edited by hand)."""
    lines = ["# Benchmark results", "", "Written by `bench/run.py`; do not edit by hand.", "", *header, ""]
    for title, rows in sections:
        lines += [f"## {title}", "", *rows, ""]
    kept = path.read_text().splitlines() if path.exists() else []
    start = next((i for i, line in enumerate(kept) if line.startswith(OTHER_SECTIONS)), len(kept))
    path.write_text("\n".join([*lines, *kept[start:]]).rstrip("\n") + "\n")


def log(*parts: Any) -> None:
    """Progress to stderr, so stdout keeps only the tables."""
    print(*parts, file=sys.stderr, flush=True)
