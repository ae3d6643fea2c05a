"""One run at a time in a stack's work dir (two ups of one stack on one machine would share it:
the second's `init` read the backend state mid-write). The lock is an flock on a file in the
work dir, with real processes; the engine tests use a module of builtin resources only."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from branchenv.config import Settings
from branchenv.engines import get_engine
from branchenv.engines.base import Program
from branchenv.engines.terraform import workspace
from branchenv.engines.terraform.engine import TerraformEngine
from branchenv.engines.terraform.workdir import WORK_DIR_LOCK, hold_work_dir
from branchenv.errors import StackLocked, StackNotFound
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at
from tests.tfsupport import terraform_bin, terraform_mirror, tf_metadata

__all__ = ["terraform_bin", "terraform_mirror"]  # fixtures, used by name


def _never(_delay: float) -> None:
    """No waiting between polls (tests don't wait); wait_s=0 means one look."""


def _look(work_dir: Path, heard: list[str] | None = None) -> None:
    """Take the work dir with one look (no wait) and release it at once."""
    on_wait = None if heard is None else heard.append
    with hold_work_dir(work_dir, stack="s1", wait_s=0, on_wait=on_wait, sleep=_never):
        pass


def test_a_held_work_dir_refuses_after_the_wait_naming_the_holder(tmp_path: Path) -> None:
    work_dir = tmp_path / "stack"
    heard: list[str] = []
    with hold_work_dir(work_dir, stack="s1"):
        assert (work_dir / WORK_DIR_LOCK).read_text().startswith(f"pid {os.getpid()} ")
        with pytest.raises(StackLocked, match=rf"'s1' is in use by pid {os.getpid()}") as caught:
            _look(work_dir, heard)
    assert caught.value.exit_code == 1
    assert len(heard) == 1 and "waiting up to 0 s" in heard[0]
    _look(work_dir)  # released with the block


def test_a_waiting_run_goes_on_when_the_holder_ends(tmp_path: Path) -> None:
    work_dir = tmp_path / "stack"
    first = contextlib.ExitStack()
    first.enter_context(hold_work_dir(work_dir, stack="s1"))
    waits: list[float] = []
    # The holder ends while the second run waits (heard through on_wait).
    with hold_work_dir(
        work_dir, stack="s1", wait_s=60, on_wait=lambda _msg: first.close(), sleep=waits.append
    ):
        assert waits  # it did wait
        with pytest.raises(StackLocked):
            _look(work_dir)


def test_a_terraform_child_never_inherits_the_lock(tmp_path: Path) -> None:
    work_dir = tmp_path / "stack"
    with hold_work_dir(work_dir, stack="s1"):
        # close_fds=False: only the descriptor's close-on-exec flag keeps it from the child.
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=False,
        )
        # Past its exec (the kernel closes close-on-exec descriptors after letting the parent
        # go on): the child runs its own code.
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
    try:
        assert child.poll() is None
        _look(work_dir)  # the parent's block ended: the lock is free though the child lives
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        assert child.stdout is not None
        child.stdout.close()


def test_a_work_dir_removed_by_its_holder_is_locked_afresh(tmp_path: Path) -> None:
    """The holder destroys the stack and removes its work dir (lock file included) while another
    run waits on that file: the waiter must lock the new file, not the unlinked one."""
    work_dir = tmp_path / "stack"
    first = contextlib.ExitStack()
    first.enter_context(hold_work_dir(work_dir, stack="s1"))

    def holder_destroys(_msg: str) -> None:
        shutil.rmtree(work_dir)
        first.close()

    with hold_work_dir(work_dir, stack="s1", wait_s=60, on_wait=holder_destroys, sleep=_never):
        assert (work_dir / WORK_DIR_LOCK).is_file()
        with pytest.raises(StackLocked):
            _look(work_dir)


# -- the engine ------------------------------------------------------------------------------


def _builtin_module(tmp_path: Path) -> Program:
    module = tmp_path / "builtin"
    module.mkdir(exist_ok=True)
    (module / "main.tf").write_text(
        'variable "prefix" {\n  type = string\n}\n'
        'resource "terraform_data" "marker" {\n  input = var.prefix\n}\n'
    )
    return program_at(module)


@pytest.mark.terraform
def test_the_engine_waits_for_a_run_holding_the_stacks_work_dir(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path
) -> None:
    engine = get_engine(
        "terraform",
        settings=Settings(project_dir=tmp_path, terraform_plugin_mirror=str(terraform_mirror)),
        target=local_cloud,
    )
    assert isinstance(engine, TerraformEngine)
    engine.work_dir_wait_s = 0
    engine._sleep = _never
    program = _builtin_module(tmp_path)
    stack = f"int-{uuid.uuid4().hex[:8]}"
    md = tf_metadata(stack)
    work_dir = workspace.work_dir_for(engine.state_dir, program.project, stack)
    lines: list[str] = []

    def up() -> object:
        return engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, target=local_cloud),
            on_output=lines.append,
        )

    try:
        with hold_work_dir(work_dir, stack=stack):  # another run of the stack on this machine
            with pytest.raises(StackLocked, match=rf"in use by pid {os.getpid()}"):
                up()
            assert any("waiting up to 0 s" in line for line in lines)
            assert engine.resources(stack=stack, program=program) == []
        assert up() is not None
        with hold_work_dir(work_dir, stack=stack):
            with pytest.raises(StackLocked):
                engine.destroy(stack=stack, program=program, target=local_cloud)
            with pytest.raises(StackLocked):
                engine.refresh(stack=stack, program=program, target=local_cloud)
    finally:
        with contextlib.suppress(StackNotFound):
            engine.destroy(stack=stack, program=program, target=local_cloud)
    assert not work_dir.exists()
    with pytest.raises(StackNotFound):
        engine.destroy(stack=stack, program=program, target=local_cloud)
    assert not work_dir.exists()  # a missing stack leaves no work dir behind
