"""The `ci` loop with the real terraform engine beside the inprocess engine, phase by phase.

Usage: python benchmarks/terraform.py [--runs 1] [--mirror DIR]

In a temporary copy of the project (its own local cloud) it runs `branchenv ci` on the same
production-like stack twice per run: the Pulumi program (infra/aws) on the inprocess engine and
the Terraform module (infra/terraform/aws) on the terraform engine, and prints each loop's wall
time with the phases `ci` reports (provision, ready, test, teardown), time to ready (provision +
ready), and the ratio terraform / inprocess. Goals (issue 12): terraform loop < 60 s, time to
ready < 40 s, on a 2-core machine.

The provider mirror is --mirror, else BRANCHENV_TERRAFORM_PLUGIN_MIRROR, else the first
directory holding registry.terraform.io/hashicorp/aws under /opt, /usr/local, /usr/share or
/srv. Figures
only: nothing here asserts (a busy machine shows as slow numbers; the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BRANCHENV = Path(sys.executable).parent / "branchenv"
LOOP_GOAL_S = 60.0
READY_GOAL_S = 40.0
PHASES = ("provision_s", "ready_s", "test_s", "teardown_s")


def find_mirror(explicit: str | None) -> Path | None:
    if explicit or os.environ.get("BRANCHENV_TERRAFORM_PLUGIN_MIRROR"):
        return Path(explicit or os.environ["BRANCHENV_TERRAFORM_PLUGIN_MIRROR"])
    for root in (Path("/opt"), Path("/usr/local"), Path("/usr/share"), Path("/srv")):
        for pattern in ("*/registry.terraform.io", "*/*/registry.terraform.io"):
            for found in sorted(root.glob(pattern)):
                if (found / "hashicorp" / "aws").is_dir():
                    return found.parent
    return None


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PULUMI_", "BRANCHENV_", "GITHUB_"))
    }
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, **extra)
    return env


def make_project(root: Path, mirror: Path) -> None:
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(
        REPO / "infra",
        root / "infra",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", ".build", ".terraform*"),
    )
    shutil.copytree(REPO / "stacks", root / "stacks")
    (root / "branchenv.toml").write_text(
        'program = "infra/aws"\ndefault_target = "local"\ndefault_ttl = "1h"\n'
        f'terraform_plugin_mirror = "{mirror}"\n'
    )


def ci(root: Path, branch: str, engine: str, program: str) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BRANCHENV), "ci", "--branch", branch, "--engine", engine, "--json",
         "--report-dir", str(root / f"reports-{engine}")],
        cwd=root,
        env=_env(BRANCHENV_PROGRAM=program, BRANCHENV_LATENCY_P95_MS="2000"),
        capture_output=True,
        text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"ci --engine {engine} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    timings = json.loads(proc.stdout)["timings"]
    return seconds, {k: float(timings[k]) for k in PHASES}


def line(label: str, seconds: float, t: dict[str, float]) -> str:
    return (
        f"{label:<22} {seconds:6.1f} s   provision {t['provision_s']:5.1f}  ready "
        f"{t['ready_s']:4.1f}  test {t['test_s']:5.1f}  teardown {t['teardown_s']:5.1f}  "
        f"(to ready {t['provision_s'] + t['ready_s']:5.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="loops per engine (default 1)")
    parser.add_argument("--mirror", help="the terraform provider mirror directory")
    args = parser.parse_args()
    mirror = find_mirror(args.mirror)
    if shutil.which("terraform") is None or mirror is None:
        sys.exit("needs terraform on PATH and a provider mirror (--mirror DIR)")

    root = Path(tempfile.mkdtemp(prefix="branchenv-bench-tf-"))
    make_project(root, mirror)
    try:
        print(f"project: {root} (own local cloud); mirror: {mirror}")
        subprocess.run([str(BRANCHENV), "cloud", "start"], cwd=root, env=_env(), check=True,
                       capture_output=True)  # fmt: skip
        for i in range(args.runs):
            inproc_s, inproc = ci(root, f"bench-in-{i}", "inprocess", "infra/aws")
            print(line("inprocess (infra/aws)", inproc_s, inproc))
            tf_s, tf = ci(root, f"bench-tf-{i}", "terraform", "infra/terraform/aws")
            print(line("terraform (tf module)", tf_s, tf))
            ready = tf["provision_s"] + tf["ready_s"]
            print(
                f"ratio terraform / inprocess: loop {tf_s / inproc_s:.1f}x, "
                f"to ready {ready / (inproc['provision_s'] + inproc['ready_s']):.1f}x"
            )
            print(
                f"goals: terraform loop {tf_s:.1f} s < {LOOP_GOAL_S:.0f} s "
                f"{'OK' if tf_s < LOOP_GOAL_S else 'MISSED'}; to ready {ready:.1f} s < "
                f"{READY_GOAL_S:.0f} s {'OK' if ready < READY_GOAL_S else 'MISSED'}"
            )
        load = os.getloadavg()
        print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    finally:
        subprocess.run([str(BRANCHENV), "cloud", "stop"], cwd=root, env=_env(), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
