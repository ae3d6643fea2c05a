"""The per-stack work dir: where terraform runs, so the user's module is never modified.

``<state dir>/terraform/<project>/<stack>/`` holds a link to every entry of the module
directory (so ``path.module``-relative files resolve and edits to the module are seen at once),
a copy of the module's ``.terraform.lock.hcl`` (init may rewrite it), terraform's own
``.terraform/`` (providers, backend), and the files the engine writes (``branchenv_*.tf``,
the saved plan, the lock file that lets one run at a time in: :func:`hold_work_dir`). Hidden
entries of the module (``.terraform``, ``.git``, build output) and local state files are never
linked: they belong to whoever runs the module by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from branchenv.errors import StackLocked, UsageError

GENERATED_PREFIX = "branchenv_"
"""Files the engine writes into a work dir start with this; the module must not use it."""

LOCK_FILE = ".terraform.lock.hcl"
_NEVER_LINKED = ("terraform.tfstate", "terraform.tfstate.backup", "terraform.tfstate.d")


def module_entries(module_dir: Path) -> list[Path]:
    """The module's entries a work dir links to (sorted)."""
    if not module_dir.is_dir() or (
        not any(module_dir.glob("*.tf")) and not any(module_dir.glob("*.tf.json"))
    ):
        raise UsageError(
            f"{module_dir} is not a Terraform module (no *.tf files); point `program` in "
            "branchenv.toml at the directory holding your root module's .tf files"
        )
    entries = []
    for entry in sorted(module_dir.iterdir()):
        name = entry.name
        if name.startswith(".") or name in _NEVER_LINKED:
            continue
        if name.startswith(GENERATED_PREFIX):
            raise UsageError(
                f"{entry} uses the {GENERATED_PREFIX}* prefix the terraform engine reserves for "
                "the files it generates in the stack's work dir; rename it"
            )
        entries.append(entry)
    return entries


def prepare_work_dir(module_dir: Path, work_dir: Path) -> Path:
    """Create or refresh ``work_dir`` from ``module_dir``: links added for new entries, removed
    for entries gone from the module; terraform's and the engine's files are kept."""
    module_dir = module_dir.resolve()
    entries = module_entries(module_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name: entry for entry in entries}
    for existing in work_dir.iterdir():
        if existing.is_symlink() and existing.name not in wanted:
            existing.unlink()
    for name, entry in wanted.items():
        link = work_dir / name
        if link.is_symlink() and os.readlink(link) == str(entry):
            continue
        if link.is_symlink() or link.is_file():
            link.unlink(missing_ok=True)
        elif link.is_dir():
            shutil.rmtree(link)
        try:
            link.symlink_to(entry)
        except FileExistsError:
            # A concurrent run of the same stack made it between our look and our link (the
            # contract's two concurrent ups); the same link is fine, anything else is not.
            if not (link.is_symlink() and os.readlink(link) == str(entry)):
                raise
    lock = module_dir / LOCK_FILE
    if lock.is_file() and not (work_dir / LOCK_FILE).exists():
        shutil.copyfile(lock, work_dir / LOCK_FILE)
    return work_dir


WORK_DIR_LOCK = ".branchenv_lock"
"""The lock file of a work dir: held (``flock``) by the one run using the work dir."""

DEFAULT_WORK_DIR_WAIT_S = 900.0
"""How long a run waits for another run of the same stack on this machine (long enough for
one update) before giving up with StackLocked."""


@contextlib.contextmanager
def hold_work_dir(
    work_dir: Path,
    *,
    stack: str,
    wait_s: float = DEFAULT_WORK_DIR_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold ``work_dir`` exclusively (an ``flock`` on its lock file, created with the work dir
    when missing) for the block: two runs of one stack on one machine never share the work
    dir (the second's ``init`` would read the backend state mid-write). A run holding it is
    waited for up to ``wait_s``, then :class:`StackLocked` names its pid. The descriptor is
    close-on-exec: terraform children never inherit the lock, so it ends with the block (or
    with the process). ``on_wait`` hears once that the work dir is busy and who holds it."""
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
        wait_exponential,
    )

    holder: list[str] = []

    def take() -> int:
        fd = _open_and_lock(work_dir)
        if fd is None:
            held_by = _holder(work_dir)
            if not holder and on_wait is not None:
                on_wait(
                    f"stack {stack!r} is in use by {held_by} on this machine; waiting up to "
                    f"{wait_s:.0f} s for it"
                )
            holder[:] = [held_by]
            raise _Busy(held_by)
        return fd

    retrying = Retrying(
        retry=retry_if_exception_type(_Busy),
        # Polls back off to one a second: the attempt cap is the deadline's worth plus slack.
        stop=stop_after_delay(wait_s) | stop_after_attempt(int(wait_s) + 20),
        wait=wait_exponential(multiplier=0.05, min=0.05, max=1.0),
        sleep=sleep,
        reraise=True,
    )
    try:
        fd = retrying(take)
    except _Busy as exc:
        raise StackLocked(
            f"stack {stack!r} is in use by {exc} on this machine (an `up`, `down` or `refresh` "
            f"of it); waited {wait_s:.0f} s. Retry when it finishes"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        yield
    finally:
        # Closing the (never inherited) descriptor releases the flock.
        os.close(fd)


class _Busy(Exception):
    pass


def _open_and_lock(work_dir: Path) -> int | None:
    """A descriptor holding the flock of ``work_dir``'s lock file, or None when another holds
    it. A lock file removed while we waited on it (the holder destroyed the stack and removed
    its work dir) is opened again: holding an unlinked file would exclude no one."""
    path = work_dir / WORK_DIR_LOCK
    while True:
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # the work dir went between our mkdir and open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        held = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


def _holder(work_dir: Path) -> str:
    try:
        text = (work_dir / WORK_DIR_LOCK).read_text().strip()
    except OSError:
        text = ""
    return text or "another process"
