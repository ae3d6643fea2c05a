"""What the commands share: loading settings with the flags named, the checks every command
makes before its first side effect, and printing notes once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from branchenv.cli import render
from branchenv.text import plural

__all__ = ["plural"]

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.provision import StackContext


def load(
    *,
    target: str | None = None,
    engine: str | None = None,
    max_hourly: str | None = None,
    max_total: str | None = None,
    program: str | None = None,
    **more: object,
) -> Settings:
    """The settings with the command's flags laid over them (each named as its flag)."""
    from branchenv.config import load_settings

    overrides: dict[str, object] = {
        "default_target": target,
        "engine": engine,
        "max_hourly": max_hourly,
        "max_total": max_total,
        "program": program,
        **more,
    }
    flags = {
        "default_target": "--target",
        "engine": "--engine",
        "max_hourly": "--max-hourly",
        "max_total": "--max-total",
        "program": "--program",
        "max_reap": "--max",
        "region": "--region",
    }
    return load_settings(
        overrides={k: v for k, v in overrides.items() if v is not None},
        flag_names={k: flags[k] for k in overrides if k in flags},
    )


def preflight(
    settings: Settings,
    branch: str | None,
    *,
    ttl: str | None = None,
    profile: str | None = None,
    acts: bool = True,
    program: str | None = None,
) -> str:
    """Check everything a stack command can check before its first side effect (starting the
    local cloud, creating the state dir, clearing reports): the branch (and, for a command that
    ``acts`` on the stack, the protected patterns), the TTL against its limits, the profile and
    the program. Returns the branch name."""
    from branchenv.config import stack_ttl
    from branchenv.gitinfo import detect_branch
    from branchenv.naming import names_for
    from branchenv.programs import select_program
    from branchenv.provision import check_profile
    from branchenv.safety import check_protected
    from branchenv.targets import check_target_name

    check_target_name(settings.default_target)
    if ttl is not None:
        stack_ttl(settings, ttl)
    if profile is not None:
        check_profile(profile)
    info = detect_branch(branch, env=os.environ, cwd=settings.project_dir)
    if acts:
        check_protected(names_for(info.name).stack, info.name, settings.protected_patterns)
    select_program(settings, program)
    return info.name


def context(
    branch: str | None,
    target: str | None,
    engine: str | None,
    *,
    start_local_cloud: bool = True,
    settings: Settings | None = None,
    program: str | None = None,
) -> StackContext:
    """Branch, names, program, target and engine resolved once (see provision.resolve)."""
    from branchenv.provision import resolve

    settings = settings or load(target=target, engine=engine)
    return resolve(
        settings,
        branch=branch,
        target=None,
        engine=None,
        start_local_cloud=start_local_cloud,
        program=program,
    )


_said: set[str] = set()


def note(text: str) -> None:
    """Print ``note: text`` on stderr, once per invocation whatever the number of callers."""
    if text in _said:
        return
    _said.add(text)
    render.status(f"note: {text}")


def say(line: str) -> None:
    """A harness output line on stderr; a ``note:`` line only once per invocation."""
    if line.startswith("note: "):
        note(line[len("note: ") :])
    else:
        render.status(line)


def notes(texts: tuple[str, ...] | list[str]) -> None:
    for text in texts:
        note(text)


def stdin_is_terminal() -> bool:
    import sys

    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def confirm(what: list[str], *, answer: str, noun: str, command: str) -> None:
    """On a terminal, show what is about to go and ask the user to type ``answer`` (the stack
    name, the target), as aws-nuke asks for the account alias; anything else stops here, having
    changed nothing (exit 1). Never called when stdin is not a terminal or with --yes."""
    import typer

    from branchenv.errors import OperationFailed

    for line in what:
        typer.echo(line, err=True)
    typer.echo(f"Type the {noun} ({answer}) to go on, anything else to stop: ", err=True, nl=False)
    try:
        typed = input().strip()
    except EOFError:
        typed = ""
    if typed != answer:
        raise OperationFailed(
            f"{command} stopped: {typed!r} is not {answer!r}; nothing was changed",
            hint=f"type {answer} at the prompt, or pass --yes to go on without asking",
        )
