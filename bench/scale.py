"""Past one machine: run the storage benches and put their figures in ``bench/RESULTS.md``.

Usage: ``.venv/bin/python bench/scale.py [--quick] [--output PATH]`` (``make bench`` runs it after
``bench/run.py``; needs the real PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379).

Runs, one after the other, each as its own process: ``bench/postgres.py`` (an API-key
request on PostgreSQL, with and without the key cache, against one primary-key
``SELECT``), ``bench/cache_propagation.py`` (how long a change takes to reach a
cached handle on SQLite, PostgreSQL and Redis), ``bench/resp3_cache.py``
(redis-py's RESP3 client-side cache against our pub/sub-invalidated one: cost
per look-up and propagation) and ``bench/two_hosts.py`` (two
gunicorn hosts on one PostgreSQL and one Redis: revocation on A until B refuses,
without and with ``GRIDAUTH_CACHE_TTL=60``). Each figure is written with its
command and the load average before and after it (the machine is shared: a
figure taken under a high load average is an upper bound). The section
"Past one machine" of the results file is replaced; the rest is kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TITLE = "## Past one machine (bench/scale.py)"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def run(script: str, *args: str) -> list[str]:
    """Run ``bench/<script>`` with ``args``; its figures, its command and the load around it, as Markdown."""
    command = [sys.executable, str(HERE / script), *args]
    shown = " ".join([".venv/bin/python", f"bench/{script}", *args])
    print(f"running {shown} ...", file=sys.stderr, flush=True)
    before = load_average()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=HERE.parent)
    after = load_average()
    lines = [f"### `{shown}`", "", f"Load average before: {before}; after: {after}.", ""]
    if done.returncode != 0:
        lines += [f"FAILED (exit {done.returncode}):", "", "```", *done.stderr.strip().splitlines()[-10:], "```"]
    else:
        lines += [line for line in done.stdout.strip().splitlines()]
    return [*lines, ""]


def replace_section(path: Path, body: list[str]) -> None:
    """Put ``body`` under :data:`TITLE` in ``path``, replacing an earlier copy of that section."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.rstrip("\n").splitlines()
    if TITLE in lines:
        start = lines.index(TITLE)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = []
    path.write_text("\n".join([*lines, "", TITLE, "", *body]).rstrip("\n") + "\n")


def main() -> None:
    """Run the benches and write their section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests, trials and keys (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    quick = args.quick
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"Run {stamp} on {os.cpu_count()} CPUs shared with other jobs.", ""]
    body += run("postgres.py", *(["--requests", "200", "--rounds", "3"] if quick else []))
    body += run("cache_propagation.py", *(["--trials", "30"] if quick else []))
    body += run("resp3_cache.py", *(["--calls", "300", "--rounds", "3", "--trials", "30"] if quick else []))
    keys = ["--keys", "20"] if quick else []
    body += run("two_hosts.py", *keys)
    body += run("two_hosts.py", *keys, "--cache-ttl", "60")
    replace_section(args.output, body)
    print("\n".join(body))


if __name__ == "__main__":
    main()
