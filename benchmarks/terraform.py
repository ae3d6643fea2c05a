"""The `ci` loop with the real terraform engine beside the inprocess engine, phase by phase.

Usage: python benchmarks/terraform.py [--runs 1] [--mirror DIR] [--commands-only]

In a temporary copy of the project (its own local cloud) it runs `branchenv ci` on the same
production-like stack twice per run: the Pulumi program (infra/aws) on the inprocess engine and
the Terraform module (infra/terraform/aws) on the terraform engine, and prints each loop's wall
time with the phases `ci` reports (provision, ready, test, teardown), time to ready (provision +
ready), and the ratio terraform / inprocess. Goals (issue 12): terraform loop < 60 s, time to
ready < 40 s, on a 2-core machine.

Then, per terraform command (issue 17 item 3): with a logging `terraform` wrapper first on
PATH, `up` of a new stack, `up` again right after (a re-claim: the same program on the stack
just written), and `down`, each listed with every terraform command it ran, its seconds, and
how many of them started the aws provider (all but `init`). Once as the engine runs them, once
"before" (the wrapper drops `-refresh=false`, which is what the engine ran before it trusted a
state it had just written), so the saving shows in one run.

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
WRAPPER = """#!/usr/bin/env bash
# Logs each terraform command with its wall time, then its exit code; BENCH_ALWAYS_REFRESH=1
# drops -refresh=false (the engine's commands before it trusted a state it had just written).
args=()
for a in "$@"; do
  if [[ "${BENCH_ALWAYS_REFRESH:-}" == 1 && "$a" == -refresh=false ]]; then continue; fi
  args+=("$a")
done
start=$(date +%s.%N)
"$REAL_TERRAFORM" "${args[@]}"
rc=$?
end=$(date +%s.%N)
printf '%s\t%s\t%s\n' "$(echo "$end - $start" | bc)" "$rc" "${args[*]}" >> "$BENCH_TF_LOG"
exit $rc
"""


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


def _verb(argv: str) -> str:
    words = argv.split()
    # -chdir=... and similar globals come first
    rest = [w for w in words if not w.startswith("-chdir")]
    verb = rest[0] if rest else "?"
    shown = [w for w in rest[1:] if w in ("-refresh=false", "-json", "-destroy", "-auto-approve")]
    if verb == "apply" and rest and not rest[-1].startswith("-"):
        shown.append("<saved plan>")
    return " ".join([verb, *[w for w in shown if w != "-auto-approve"]])


def commands(root: Path, mirror: Path, before: bool) -> None:
    """up (new), up (again), down: every terraform command each ran, timed."""
    bindir = root / "bench-bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "terraform"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    log = root / "tf-commands.log"
    real = shutil.which("terraform")
    assert real is not None
    env = _env(
        BRANCHENV_PROGRAM="infra/terraform/aws",
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        REAL_TERRAFORM=real,
        BENCH_TF_LOG=str(log),
        BENCH_ALWAYS_REFRESH="1" if before else "",
    )
    branch = "bench-cmds-before" if before else "bench-cmds"
    label = "before (refresh always)" if before else "now"
    print(f"-- terraform commands, {label}")
    for step, args in (
        ("up (new stack)", ["up", "--branch", branch, "--engine", "terraform"]),
        ("up (again, just written)", ["up", "--branch", branch, "--engine", "terraform"]),
        ("down", ["down", "--branch", branch, "--engine", "terraform"]),
    ):
        log.write_text("")
        start = time.perf_counter()
        proc = subprocess.run(
            [str(BRANCHENV), *args], cwd=root, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        rows = [line.split("\t", 2) for line in log.read_text().splitlines() if line]
        starts = sum(1 for _, _, argv in rows if _verb(argv).split()[0] != "init")
        print(f"{step:<26} {seconds:6.1f} s   {starts} provider start(s)")
        for secs, _rc, argv in rows:
            print(f"    {float(secs):6.1f} s  terraform {_verb(argv)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="loops per engine (default 1)")
    parser.add_argument("--mirror", help="the terraform provider mirror directory")
    parser.add_argument(
        "--commands-only", action="store_true", help="only the per-command part (no ci loops)"
    )
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
        for i in range(0 if args.commands_only else args.runs):
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
        commands(root, mirror, before=False)
        commands(root, mirror, before=True)
        load = os.getloadavg()
        print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    finally:
        subprocess.run([str(BRANCHENV), "cloud", "stop"], cwd=root, env=_env(), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
