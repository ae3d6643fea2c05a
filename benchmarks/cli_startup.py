"""How long `branchenv --help` takes, as a user feels it (a fresh process each time).

Usage: python benchmarks/cli_startup.py [-n 10] [--goal 0.3] [--top 15]

Prints min/median/max wall time over N runs (after one unmeasured warm-up run that fills the
bytecode caches) against the goal. When the median misses the goal, or with --profile, it also
prints the top import-time offenders from `python -X importtime -m branchenv --help`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BRANCHENV = Path(sys.executable).parent / "branchenv"
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)$")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    env["COLUMNS"] = "100"
    return env


def time_help(runs: int) -> list[float]:
    """Wall time in seconds of `branchenv --help`, one fresh process per run."""
    cmd = [str(BRANCHENV), "--help"]
    subprocess.run(cmd, env=_env(), capture_output=True, check=True)  # warm-up, not measured
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def import_offenders(top: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(top-level imports by cumulative µs, any module by self µs) for `branchenv --help`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "branchenv", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    cumulative: list[tuple[int, str]] = []
    own: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        self_us, cum_us, indent, name = int(m[1]), int(m[2]), m[3], m[4]
        own.append((self_us, name))
        if len(indent) <= 1:  # a module imported directly by the entry point, not a child
            cumulative.append((cum_us, name))
    cumulative.sort(reverse=True)
    own.sort(reverse=True)
    return cumulative[:top], own[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument("--goal", type=float, default=0.3, help="seconds (default 0.3)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="always show import offenders")
    args = parser.parse_args()

    if not BRANCHENV.is_file():
        print(f"{BRANCHENV} not found: run `pip install -e .` in this venv", file=sys.stderr)
        return 2
    times = time_help(args.runs)
    median = statistics.median(times)
    verdict = "meets" if median < args.goal else "MISSES"
    print(f"branchenv --help over {args.runs} runs ({BRANCHENV})")
    print(f"  min    {min(times):.3f} s")
    print(f"  median {median:.3f} s")
    print(f"  max    {max(times):.3f} s")
    print(f"  goal   < {args.goal:.3f} s (median {verdict} the goal)")

    subprocess.run([sys.executable, "-c", "pass"], env=_env(), capture_output=True, check=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=_env(), capture_output=True, check=True)
    print(f"  (bare `python -c pass` for reference: {time.perf_counter() - start:.3f} s)")

    if median >= args.goal or args.profile:
        cumulative, own = import_offenders(args.top)
        print(
            f"\nTop {len(cumulative)} top-level imports by cumulative time (python -X importtime):"
        )
        for us, name in cumulative:
            print(f"  {us / 1000:8.1f} ms  {name}")
        print(f"\nTop {len(own)} modules by own (self) import time:")
        for us, name in own:
            print(f"  {us / 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
