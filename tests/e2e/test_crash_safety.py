"""Issue 15's crash safety for `up` on the inprocess engine: SIGKILL delivered to a real `up`
subprocess at 10 offsets across provisioning of the demo stack; afterwards, with no orphan grace
(no orphan sweep at all), `reap --yes` leaves 0 resources carrying the stack's tag on the local
cloud. What is left is counted in the local cloud by tag, never from branchenv's state."""

from __future__ import annotations

import signal
import subprocess
import time

from branchenv.inventory import find_tagged
from branchenv.naming import names_for
from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, Project

OFFSETS = 10


def _start_up(project: Project, branch: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EXE), "up", "--branch", branch, "--ttl", "1s"],
        cwd=project.root,
        env=subprocess_env(**E2E_DEFAULTS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(proc: subprocess.Popen[str], needle: str) -> float:
    """Read the child's progress until a line holding ``needle``; when it came."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if needle in line:
            return time.monotonic()
    raise AssertionError(f"`up` ended (exit {proc.wait()}) before printing {needle!r}")


def tagged_count(project: Project, branch: str) -> int:
    return len(
        find_tagged(project.target(), key="branchenv:stack", values={names_for(branch).stack})
    )


def _lines_until(proc: subprocess.Popen[str], needle: str, count: int | None = None) -> int:
    """Read progress lines after the current point: stop after ``count`` of them, or at the
    line holding ``needle``; returns how many lines came before it."""
    assert proc.stderr is not None
    seen = 0
    for line in proc.stderr:
        if count is not None and seen == count:
            return seen
        if needle in line:
            return seen
        seen += 1
    if count is not None and seen == count:
        return seen
    raise AssertionError(f"`up` ended (exit {proc.wait()}) before printing {needle!r}")


def test_sigkill_at_ten_offsets_of_up_leaves_nothing_after_reap(project: Project) -> None:
    # What provisioning prints here: the progress lines between "updating" and "done".
    calibrate = _start_up(project, "crash/calibrate")
    _until(calibrate, "updating ")
    lines = _lines_until(calibrate, "done:")
    assert calibrate.wait(timeout=120) == 0
    project.run("down", "--branch", "crash/calibrate", check=True)
    assert lines >= OFFSETS, lines

    killed_with_resources = 0
    branches = [f"crash/at-{i}" for i in range(OFFSETS)]
    passed = False
    try:
        for i, branch in enumerate(branches):
            proc = _start_up(project, branch)
            _until(proc, "updating ")
            # Offsets spread across provisioning: after the n-th progress line (from none to
            # nearly all), then a few milliseconds more, to land inside the calls too.
            _lines_until(proc, "done:", count=lines * i // OFFSETS)
            time.sleep((i % 3) * 0.015)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, f"offset {i}: `up` had finished"
            if proc.stderr is not None:
                proc.stderr.close()
            if tagged_count(project, branch):
                killed_with_resources += 1
        # The kills really left resources behind (else this test could not fail).
        assert killed_with_resources >= OFFSETS // 2, killed_with_resources

        time.sleep(1.5)  # every killed stack's 1 s TTL has run out
        reaped = project.run("reap", "--yes", "--json", timeout=600)
        assert reaped.returncode == 0, reaped.stderr
        report = cli_result(reaped.stdout)
        assert report["failed"] == 0, report
        assert report["orphans_checked"] is False  # no sweep: the journal alone did it
        left = {b: tagged_count(project, b) for b in branches}
        assert left == dict.fromkeys(branches, 0), left
        passed = True
    finally:
        # Clean-up: after a pass, what is still listed (nothing: the reap removed them all).
        if passed:
            project.down_left(branches)
        else:
            project.down_all(branches)
