"""The one error tree of branchenv.

The CLI catches :class:`BranchenvError` once, prints its message as one line on stderr and exits
with its ``exit_code``. Anything else escaping is a bug and keeps its traceback.

::

    BranchenvError                       exit 1  an operation failed
    ├── UsageError                       exit 2  bad input, usage or configuration
    │   ├── ConfigError                          a malformed or unknown setting
    │   ├── NamingError                          a branch that leaves no usable name
    │   ├── EngineUnavailable                    an engine that cannot run here (no pulumi CLI)
    │   └── UnsupportedResource                  program uses types the engine cannot create
    ├── SafetyRefusal                    exit 3  refused by a safety rule
    ├── OperationFailed                  exit 1  generic failure of an operation
    ├── LocalCloudError                  exit 1  the local cloud failed to start/stop/answer
    ├── StackNotFound                    exit 1  no such stack
    ├── TransientError                   exit 1  known to be transient: worth retrying
    │   └── StackLocked                          another update holds the stack's lock
    ├── EngineError                      exit 1  the engine failed while running the program
    └── BudgetExceeded                   exit 1  a stack's cost is over --max-hourly/--max-total

Messages say what to do next and name the flag or variable; they never contain secrets. An
error may carry its fix apart (``hint=``): ``str(exc)`` is then ``"<message>; <hint>"``, and the
CLI's ``--json`` envelope gives the two as ``error.message`` and ``error.hint``.
"""

from __future__ import annotations

from branchenv.text import plural

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def one_line(exc: BaseException, *, limit: int | None = None) -> str:
    """``Type: first line of the message`` (cut to ``limit`` characters): how an underlying
    error is quoted inside one of ours, never with its traceback."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0][:limit]}"


class BranchenvError(Exception):
    """Base of every error branchenv reports to a user."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(f"{message}; {hint}" if hint else message)
        self.message = message
        self.hint = hint


class UsageError(BranchenvError):
    """Bad input, usage or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A malformed or unknown configuration setting."""


class NamingError(UsageError):
    """A branch name that leaves nothing usable for a stack name."""


class EngineUnavailable(UsageError):
    """The chosen engine cannot run on this machine (for example no ``pulumi`` CLI)."""


class UnsupportedResource(UsageError):
    """The program uses resource types the engine cannot materialize; nothing was created."""

    def __init__(self, types: list[str], engine: str) -> None:
        self.types = sorted(set(types))
        super().__init__(
            f"the {engine} engine cannot create {plural(len(self.types), 'resource type')} used by the "
            f"program: {', '.join(self.types)}; nothing was created. Use `--engine pulumi` with a "
            "real pulumi CLI, or remove these resources from the program"
            + (
                " (for a Kubernetes program, `branchenv render` renders and validates its "
                "manifests locally)"
                if any(t.startswith("kubernetes:") for t in self.types)
                else ""
            )
        )


class SafetyRefusal(BranchenvError):
    """Refused by a safety rule (exit 3)."""

    exit_code = EXIT_REFUSED


class OperationFailed(BranchenvError):
    """An operation failed (exit 1)."""


class LocalCloudError(BranchenvError):
    """The local cloud could not be started, stopped or reached."""


class StackNotFound(BranchenvError):
    """No stack of that name exists in the engine's backend."""


class TransientError(BranchenvError):
    """A failure known to be transient (throttling, a dropped connection, a held lock).

    Engines raise it at their boundary, translating what they know to be transient; teardown
    and the reaper retry exactly this type, never by matching words in messages."""


class StackLocked(TransientError):
    """Another update holds the stack's lock (a concurrent `up` or `down`)."""


class EngineError(BranchenvError):
    """The engine failed while running the program."""


class BudgetExceeded(BranchenvError):
    """A stack's estimated cost is over a budget limit (``--max-hourly`` / ``--max-total``)."""
