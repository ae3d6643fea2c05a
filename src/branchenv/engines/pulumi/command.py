"""The ``pulumi`` CLI started in a process group of its own, announced while it runs.

pulumi.automation starts every CLI command with a plain ``subprocess.Popen``: the child shares
``ci``'s process group, and nobody hears of it. When ``ci`` is killed (SIGKILL reaches no
handler) that child runs on, orphaned: an ``up`` goes on creating resources, holding the stack's
lock, while ``ci``'s watchdog tries to destroy the stack - its destroy waits on the lock, and
what the orphan creates after it is leaked. Started the way the terraform engine starts its
binary (:mod:`branchenv.processes`), the watchdog is told of the group and stops it first
(SIGINT: the CLI cancels the update, writes its state and releases the lock; SIGKILL after the
grace), then destroys.

:class:`GroupedCommand` is a :class:`pulumi.automation.PulumiCommand` whose :meth:`run` is the
SDK's (pulumi/automation/_cmd.py, v3.272: ``--non-interactive`` before any ``--`` argument,
``PULUMI_AUTOMATION_API=true``, the install's bin first on PATH, both streams consumed line by
line into the callbacks, :func:`create_command_error` on a non-zero exit) with the start changed.
Its output goes to files, not pipes (:class:`branchenv.processes.Tailed`): a Go program writing
to a pipe whose reader died exits at once on SIGPIPE, mid-update. A group of its own also means
a Ctrl-C at the terminal reaches the CLI only through branchenv: on the first the provisioning
step finishes (the signal guard's ``finish``), a second is forwarded to the CLI's group (it
cancels the update); a caller that gives up on the wait stops the group as below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pulumi import automation as auto
from pulumi.automation.errors import create_command_error

from branchenv import processes

STOP_GRACE_S = 60.0
"""How long a CLI given up on (an interrupt while waiting for it) has after SIGINT to cancel
its update and release the lock before it is killed."""


class GroupedCommand(auto.PulumiCommand):
    """The CLI of ``inner`` (its path and checked version), each command in a group of its own,
    announced to :mod:`branchenv.processes`' listeners."""

    def __init__(self, inner: auto.PulumiCommand) -> None:
        # Not super().__init__: that runs `pulumi version` again; inner has checked it.
        self.command = inner.command
        self.version = inner.version

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Any = None,
        on_error: Any = None,
    ) -> auto.CommandResult:
        sep = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:sep]:
            args.insert(0, "--non-interactive")
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        if os.path.isabs(self.command):
            env["PATH"] = os.pathsep.join([os.path.dirname(self.command), env.get("PATH", "")])
        out: list[str] = []
        err: list[str] = []
        child = processes.Tailed(
            [self.command, *args],
            cwd=cwd,
            env=env,
            on_stdout=lambda line: _collect(line, out, on_output),
            on_stderr=lambda line: _collect(line, err, on_error),
        )
        code = child.wait(grace_s=STOP_GRACE_S)
        result = auto.CommandResult(stdout="\n".join(out), stderr="\n".join(err), code=code)
        if code != 0:
            raise create_command_error(result)
        return result


def _collect(line: str, into: list[str], callback: Any) -> None:
    stripped = line.rstrip()
    into.append(stripped)  # kept even when the callback fails (Tailed.wait raises that later)
    if callback:
        callback(stripped)


def grouped(command: auto.PulumiCommand) -> auto.PulumiCommand:
    """``command`` with each run in a group of its own; a caller's own subclass (which may start
    the CLI its own way) is kept as it is."""
    return GroupedCommand(command) if type(command) is auto.PulumiCommand else command
