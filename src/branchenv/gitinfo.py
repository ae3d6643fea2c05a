"""The one gateway to the ``git`` executable, and what branchenv asks git.

Every git call goes through :func:`run_git`: non-interactive (``GIT_TERMINAL_PROMPT=0``, stdin
closed, a new session so ssh cannot prompt on the terminal), under a timeout after which the
whole process group is killed, with failures translated into branchenv errors whose messages
never show credentials embedded in remote URLs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from branchenv.errors import OperationFailed, UsageError

GIT_TIMEOUT_S = 15.0
"""Timeout of local git commands."""

GIT_REMOTE_TIMEOUT_S = 60.0
"""Timeout of git commands that talk to a remote."""

BRANCH_SOURCES = ("flag", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "git")
"""Where a branch name can come from, in the order :func:`detect_branch` tries them."""

_CI_BRANCH_VARS = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")
_OWNER_VARS = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class GitResult:
    """What one git command returned (stdout and stderr decoded, stripped of trailing space)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class BranchInfo:
    """The branch to build a stack for and where its name came from.

    ``source`` is one of :data:`BRANCH_SOURCES`. ``detached`` is true when HEAD was detached and
    ``name`` was made from the commit (``detached-<sha7>``).
    """

    name: str
    source: str
    detached: bool


def redact(text: str) -> str:
    """``text`` with the user/password part of every URL replaced by ``***``."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


def git_available() -> bool:
    """True when a ``git`` executable is on PATH."""
    return shutil.which("git") is not None


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = GIT_TIMEOUT_S,
    check: bool = True,
) -> GitResult:
    """Run ``git <args>`` in ``cwd`` non-interactively and return what it printed.

    Raises :class:`~branchenv.errors.OperationFailed` when git is missing, times out, or
    (``check``) exits non-zero; with ``check=False`` a non-zero exit is returned instead.
    """
    command = ("git", *args)
    shown = redact(" ".join(command))
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C"}
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if cwd is not None and not Path(cwd).is_dir():
            raise OperationFailed(f"cannot run `{shown}`: directory {cwd} does not exist") from exc
        raise OperationFailed(
            "git is not installed or not on PATH; install git (or pass `--branch NAME` "
            "so that branchenv does not need it)"
        ) from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise OperationFailed(
            f"`{shown}` did not finish within {timeout:g}s; check that the repository or remote "
            "is reachable without a password prompt"
        ) from None
    result = GitResult(
        args=tuple(args),
        returncode=proc.returncode,
        stdout=out.decode("utf-8", "replace").rstrip(),
        stderr=err.decode("utf-8", "replace").rstrip(),
    )
    if check and result.returncode != 0:
        raise OperationFailed(
            f"`{shown}` failed (exit {result.returncode}): {_first_line(result.stderr)}"
        )
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _first_line(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip().removeprefix("fatal: ").removeprefix("error: ")
        if line:
            return redact(line)
    return "no error output"


def _inside_work_tree(cwd: Path) -> bool:
    if not git_available() or not cwd.is_dir():
        return False
    result = run_git(["rev-parse", "--is-inside-work-tree"], cwd=cwd, check=False)
    return result.returncode == 0 and result.stdout == "true"


def detect_branch(explicit: str | None, *, env: Mapping[str, str], cwd: Path) -> BranchInfo:
    """The branch to work on: ``--branch``, then CI variables, then the checkout in ``cwd``.

    Order: ``explicit``, GITHUB_HEAD_REF (set on pull requests), GITHUB_REF_NAME,
    CI_COMMIT_REF_NAME, then ``git``. A detached HEAD gives ``detached-<sha7>`` with
    ``detached=True``. Raises :class:`~branchenv.errors.UsageError` naming ``--branch`` when
    none of these gives a name.
    """
    if explicit is not None:
        name = explicit.strip()
        if not name:
            raise UsageError("`--branch` is empty; pass `--branch NAME` with a branch name")
        return BranchInfo(name=name, source="flag", detached=False)
    for var in _CI_BRANCH_VARS:
        value = env.get(var, "").strip()
        if value:
            return BranchInfo(name=value, source=var, detached=False)
    if not _inside_work_tree(cwd):
        raise UsageError(
            f"cannot tell the branch: {cwd} is not inside a git checkout (or git is missing) and "
            f"none of {', '.join(_CI_BRANCH_VARS)} is set; pass `--branch NAME`"
        )
    # symbolic-ref also names the branch of a repository without commits yet.
    symbolic = run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=cwd, check=False)
    if symbolic.returncode == 0 and symbolic.stdout:
        return BranchInfo(name=symbolic.stdout, source="git", detached=False)
    short = run_git(["rev-parse", "--short=7", "HEAD"], cwd=cwd, check=False)
    if short.returncode != 0 or not short.stdout:
        raise UsageError(
            f"cannot tell the branch: HEAD in {cwd} is neither a branch nor a commit "
            f"({_first_line(short.stderr)}); pass `--branch NAME`"
        )
    return BranchInfo(name=f"detached-{short.stdout}", source="git", detached=True)


def current_commit(cwd: Path) -> str:
    """The full SHA of HEAD in ``cwd``, or ``"unknown"`` outside git or before the first commit."""
    if not _inside_work_tree(cwd):
        return "unknown"
    result = run_git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=cwd, check=False)
    return result.stdout if result.returncode == 0 and result.stdout else "unknown"


def detect_owner(*, env: Mapping[str, str], cwd: Path) -> str:
    """Who owns a new stack: GITHUB_ACTOR, GITLAB_USER_LOGIN, ``git config user.email``,
    USER, else ``"unknown"``."""
    for var in _OWNER_VARS:
        value = env.get(var, "").strip()
        if value:
            return value
    if git_available():
        email = run_git(
            ["config", "--get", "user.email"], cwd=cwd if cwd.is_dir() else None, check=False
        )
        if email.returncode == 0 and email.stdout.strip():
            return email.stdout.strip()
    user = env.get("USER", "").strip()
    return user or "unknown"


def remote_heads(remote: str, *, cwd: Path | None = None) -> set[str]:
    """The branch names (without ``refs/heads/``) that exist on ``remote``.

    ``remote`` is a remote name of the repository in ``cwd``, a URL or a path (a bare
    repository works). Raises :class:`~branchenv.errors.OperationFailed` when it cannot be read.
    """
    if not remote or remote.startswith("-"):
        raise UsageError(f"{remote!r} is not a git remote; pass a remote name, URL or path")
    result = run_git(
        ["ls-remote", "--heads", "--", remote], cwd=cwd, timeout=GIT_REMOTE_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise OperationFailed(
            f"cannot list the branches of git remote {redact(remote)!r}: "
            f"{_first_line(result.stderr)}; check the remote name or URL and your access to it"
        )
    heads: set[str] = set()
    for line in result.stdout.splitlines():
        _sha, _tab, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads.add(ref.removeprefix("refs/heads/"))
    return heads
