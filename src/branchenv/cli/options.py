"""The one option vocabulary of the CLI: every flag is defined once here (its names, metavar and
help) and every command builds its options from it, so `--target` is `--target/-t` with the
same help everywhere. ``tests/unit/test_cli_options.py`` walks the whole typer app and fails on
a flag spelled two ways, a flag missing from :data:`FLAGS`, a `<bool>` metavar or a command whose
help does not list its exit codes.

A command may add a clause to a flag's help (what its default is *for that command*) with
``default=``; the flag's own text always comes first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from branchenv.config import TARGETS


@dataclasses.dataclass(frozen=True)
class Flag:
    """One flag: its long and short names, what its value looks like, what it means."""

    long: str
    short: str | None
    metavar: str | None  # None: a boolean flag (no value, no metavar)
    help: str
    negatable: bool = False  # a boolean with a --no- form (unset: a setting decides)

    @property
    def names(self) -> tuple[str, ...]:
        first = f"{self.long}/--no-{self.long[2:]}" if self.negatable else self.long
        return (first, self.short) if self.short else (first,)


def _engine_help() -> str:
    from branchenv.engines import engine_names

    return (
        f"Engine: auto | {' | '.join(engine_names())}; auto picks one that runs the program here."
    )


_DEFINITIONS = (
    Flag("--branch", "-b", "NAME", "Branch (default: CI variables, then the git checkout)."),
    Flag("--target", "-t", "TARGET", f"Where resources live: {' | '.join(TARGETS)}."),
    Flag("--engine", "-e", "ENGINE", _engine_help()),
    Flag("--format", "-f", "FORMAT", "Output format"),
    Flag("--json", None, None, "Print one JSON envelope on stdout, errors included."),
    Flag("--yes", "-y", None, "Go ahead without asking."),
    Flag("--ttl", None, "DURATION", "Time to live: 90m, 24h, 7d, ... (at most max_ttl)."),
    Flag("--profile", None, "PROFILE", "Sizing profile: ephemeral | prodlike."),
    Flag(
        "--program",
        None,
        "PROGRAM",
        "Which program: a configured program's name ([tool.branchenv.programs]); for init and "
        "render, its directory relative to the project.",
    ),
    Flag("--suite", None, "PATH", "The pytest suite to run (default: <program>/tests)."),
    Flag("--report-dir", None, "DIR", "Where JUnit XML and the summary go (default: reports/)."),
    Flag("--ready-timeout", None, "SECONDS", "How long to wait for the stack to answer."),
    Flag("--keep", None, None, "Keep the stack when the run fails, for debugging (TTL applies)."),
    Flag(
        "--destroy-existing",
        None,
        None,
        "Also destroy a stack that existed before this run (default: keep it).",
    ),
    Flag("--allow-shared", None, "NAME", "A physical name this stack may share (repeatable)."),
    Flag("--max-hourly", None, "USD", "Budget gate: fail (exit 1) above this burn per hour."),
    Flag("--max-total", None, "USD", "Budget gate: fail (exit 1) above this cost to expiry."),
    Flag("--preview-only", None, None, "Show what would change (as `preview`); change nothing."),
    Flag("--show-same", None, None, "Also list unchanged resources."),
    Flag("--region", "-r", "REGION", "AWS region."),
    Flag("--out", "-o", "PATH", "Where to write the output."),
    Flag("--config", "-c", "KEY=VALUE", "Stack config over the target's template (repeatable)."),
    Flag("--k8s-version", None, "VERSION", "Kubernetes version whose schemas validate."),
    Flag("--force", None, None, "Replace files that exist."),
    Flag("--all", None, None, "Every stack the engines know."),
    Flag("--by", None, "GROUPING", "Group by: stack | branch | owner | account | region."),
    Flag("--actual", None, None, "Add actual cost from Cost Explorer (the branchenv:stack tag)."),
    Flag("--orphans", None, None, "Also sweep resources tagged for stacks no engine knows."),
    Flag("--max", None, "COUNT", "Most stacks one run may destroy (default: max_reap)."),
    Flag("--max-orphans", None, "COUNT", "Most orphaned resources one run may delete."),
    Flag("--orphan-grace", None, "DURATION", "Leave orphans younger than this."),
    Flag("--remote", None, "REMOTE", "Git remote (name or URL) whose branches are checked."),
    Flag(
        "--pool",
        None,
        None,
        "Claim a ready stack from the warm pool (see `branchenv pool`); --no-pool: never.",
        negatable=True,
    ),
    Flag("--size", None, "COUNT", "Stacks the pool should hold."),
    Flag(
        "--accounts",
        None,
        "IDS",
        "Comma-separated AWS account ids to reap in (each must be in allowed_account_ids); "
        "several need --assume-role.",
    ),
    Flag(
        "--regions",
        None,
        "REGIONS",
        "Comma-separated regions to reap in, or `all`: every region each account has enabled "
        "(default: the region setting).",
    ),
    Flag(
        "--assume-role",
        None,
        "ARN",
        "Role ARN template assumed in each account, e.g. "
        "arn:aws:iam::{account}:role/branchenv-reaper.",
    ),
    Flag("--role-session-name", None, "NAME", "Session name of the assumed roles (CloudTrail)."),
    Flag(
        "--external-id",
        None,
        "ID",
        "External id the roles' trust policies require (prefer the variable: never printed).",
    ),
    Flag(
        "--account-concurrency",
        None,
        "COUNT",
        "Most API calls in flight per account at once (its rate limits).",
    ),
)
FLAGS: dict[str, Flag] = {f.long: f for f in _DEFINITIONS}
assert len(FLAGS) == len(_DEFINITIONS), "a flag defined twice"
assert len({f.short for f in _DEFINITIONS if f.short}) == sum(1 for f in _DEFINITIONS if f.short)


def option(long: str, default: Any = None, *, default_help: str | None = None, **extra: Any) -> Any:
    """The typer option for the vocabulary's ``long`` flag (``default_help``: a clause on what
    the default means for this command, appended to the flag's help)."""
    flag = FLAGS[long]
    text = flag.help
    if default_help:
        text = f"{text.rstrip('.')} ({default_help})."
    return typer.Option(
        default,
        *flag.names,
        help=text,
        metavar=flag.metavar if flag.metavar is not None else "",
        **extra,
    )


def format_option(choices: tuple[str, ...], default: str = "table") -> Any:
    """``--format/-f`` with this command's choices."""
    flag = FLAGS["--format"]
    return typer.Option(
        default,
        *flag.names,
        help=f"{flag.help}: {' | '.join(choices)} (json is --json).",
        metavar=flag.metavar,
    )


# The exit codes every command's help lists (in its epilog).
EXIT_CODES = "Exit codes: 0 ok, 1 failed, 2 bad input or usage, 3 refused by a safety rule."
SIGNAL_EXITS = " 130/143 stopped by SIGINT/SIGTERM."


def epilog(*, signals: bool = False) -> str:
    return EXIT_CODES + (SIGNAL_EXITS if signals else "")


def new_app(**kwargs: Any) -> typer.Typer:
    """A typer app with the CLI's help style: plain click help (80 columns, no `<bool>`)."""
    return typer.Typer(rich_markup_mode=None, **kwargs)
