"""What the integration harness costs, as a user feels it.

Usage: python benchmarks/harness.py [-n 3] [--ci-runs 1] [--suite PATH]

In a temporary copy of the demo project (its own local cloud), it prints:

1. overhead of `branchenv test` over plain pytest on the same suite against the same stack
   (`python -m pytest <suite> --branchenv-stack-file ...`): median wall times over N runs each,
   against the goal of < 0.5 s + 10 % of the plain run;
2. the whole local `branchenv ci` loop (up -> ready -> test -> down) wall time, against the goal
   of < 10 s, with the phase breakdown `ci` reports.

Figures only: nothing here asserts, so a busy machine shows up as slow numbers, not failures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BRANCHENV = Path(sys.executable).parent / "branchenv"
OVERHEAD_FIXED_S = 0.5
OVERHEAD_RATIO = 0.10
CI_GOAL_S = 10.0


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PULUMI_", "BRANCHENV_", "GITHUB_"))
    }
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def make_project(root: Path) -> None:
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(REPO / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "stacks", root / "stacks")
    (root / "branchenv.toml").write_text(
        'program = "infra/aws"\ndefault_target = "local"\ndefault_ttl = "1h"\n'
    )


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    return time.perf_counter() - start, proc


def must(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"{what} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--ci-runs", type=int, default=1, help="`ci` loops to time (default 1)")
    parser.add_argument("--suite", default="infra/aws/tests", help="suite, relative to project")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="branchenv-bench-"))
    make_project(root)
    reports = root / "reports"
    try:
        print(f"project: {root} (own local cloud)")
        _, proc = timed([str(BRANCHENV), "up", "--branch", "bench", "--json"], root)
        must(proc, "branchenv up")
        # one unmeasured run: writes the stack file and fills caches
        _, proc = timed(
            [str(BRANCHENV), "test", "--branch", "bench", "--suite", args.suite,
             "--report-dir", str(reports)],
            root,
        )  # fmt: skip
        must(proc, "branchenv test (warm-up)")
        stack_file = reports / "stack.json"
        plain_cmd = [
            sys.executable, "-m", "pytest", args.suite, "-q", "-p", "no:cacheprovider",
            f"--branchenv-stack-file={stack_file}",
        ]  # fmt: skip
        harness_cmd = [
            str(BRANCHENV), "test", "--branch", "bench", "--suite", args.suite,
            "--report-dir", str(root / "reports-harness"),
        ]  # fmt: skip
        plain, harness = [], []
        for _ in range(args.n):
            seconds, proc = timed(plain_cmd, root)
            must(proc, "plain pytest")
            plain.append(seconds)
            seconds, proc = timed(harness_cmd, root)
            must(proc, "branchenv test")
            harness.append(seconds)
        p, h = statistics.median(plain), statistics.median(harness)
        goal = OVERHEAD_FIXED_S + OVERHEAD_RATIO * p
        verdict = "OK" if h - p < goal else "MISSED"
        print(f"plain pytest     median {p:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in plain)})")
        print(
            f"branchenv test   median {h:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in harness)})"
        )
        print(f"overhead         {h - p:+6.2f} s  goal < {goal:.2f} s (0.5 s + 10 %)  {verdict}")
        _, proc = timed([str(BRANCHENV), "down", "--branch", "bench"], root)
        must(proc, "branchenv down")

        for i in range(args.ci_runs):
            seconds, proc = timed(
                [str(BRANCHENV), "ci", "--branch", f"bench-ci-{i}", "--suite", args.suite,
                 "--report-dir", str(root / "reports-ci"), "--json"],
                root,
            )  # fmt: skip
            must(proc, "branchenv ci")
            t = json.loads(proc.stdout)["timings"]
            verdict = "OK" if seconds < CI_GOAL_S else "MISSED"
            print(
                f"ci loop          {seconds:6.2f} s  goal < {CI_GOAL_S:.0f} s  {verdict}  "
                f"(provision {t['provision_s']:.2f}, ready {t['ready_s']:.2f}, "
                f"test {t['test_s']:.2f}, teardown {t['teardown_s']:.2f})"
            )
        load = os.getloadavg()
        print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    finally:
        subprocess.run([str(BRANCHENV), "cloud", "stop"], cwd=root, env=_env(), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
