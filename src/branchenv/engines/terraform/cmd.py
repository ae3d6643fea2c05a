"""The one gateway that starts terraform (Terratest's ``RunTerraformCommandE``).

Every command runs non-interactively (``-input=false``, ``TF_INPUT=0``, ``TF_IN_AUTOMATION``),
without colour, with ``-lock-timeout`` where the command takes a lock; its output lines go to the
progress sink as they come (secrets masked). A failure whose output matches the options' table of
retryable errors is retried (attempts and wait from the options); any other failure is mapped to
branchenv's error tree here, at the boundary: a held state lock is :class:`StackLocked`, the rest
:class:`EngineError` quoting terraform's own ``Error:`` lines.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from branchenv import processes
from branchenv.engines.terraform.options import TerraformOptions
from branchenv.errors import EngineError, EngineUnavailable, StackLocked, TransientError

OutputSink = Callable[[str], None]

_INPUT = "-input=false"
_NO_COLOR = "-no-color"
_LOCK = "-lock-timeout"

# Which of the gateway's flags each subcommand accepts (others reject unknown flags).
_FLAGS: dict[str, tuple[str, ...]] = {
    "init": (_INPUT, _NO_COLOR, _LOCK),
    "plan": (_INPUT, _NO_COLOR, _LOCK),
    "apply": (_INPUT, _NO_COLOR, _LOCK),
    "destroy": (_INPUT, _NO_COLOR, _LOCK),
    "refresh": (_INPUT, _NO_COLOR, _LOCK),
    "import": (_INPUT, _NO_COLOR, _LOCK),
    "output": (_NO_COLOR,),
    "show": (_NO_COLOR,),
    "validate": (_NO_COLOR,),
    "version": (),
    "state": (),
    "providers": (),
    "force-unlock": (),
}
# Two-word commands: their own flags go after both words.
_TWO_WORD = frozenset({"state", "providers"})

_LOCK_HELD = re.compile(r"Error acquiring the state lock|state blob is already locked")
_LOCK_FIELD = re.compile(r"^\s*(ID|Who|Created|Operation):\s*(.+?)\s*$", re.MULTILINE)
_INTERRUPTED = re.compile(r"^\s*Interrupt received\.", re.MULTILINE)
"""What terraform (and tofu) print when SIGINT stops them gracefully."""
_ERROR_LINE = re.compile(r"^(?:│\s*)?Error:\s*(.+?)\s*$", re.MULTILINE)
_MAX_QUOTED_ERRORS = 3
STOP_GRACE_S = 60.0
"""How long terraform gets to stop gracefully (state written, lock released) when its run is
given up on, before SIGKILL."""


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """One finished terraform command (after any retries)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    attempts: int = 1
    messages: tuple[dict[str, Any], ...] = ()
    """With ``json_ui``: every message terraform's machine-readable UI wrote, in order."""


class _Retryable(Exception):
    def __init__(self, result: CommandResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def command_args(options: TerraformOptions, args: Sequence[str]) -> list[str]:
    """The full argv for ``args`` (``["plan", "-out=x"]``): the binary, the subcommand, the
    gateway's flags that subcommand takes, then ``args``' own flags."""
    if not args:
        raise ValueError("no terraform subcommand given")
    head = 2 if args[0] in _TWO_WORD and len(args) > 1 else 1
    flags = _FLAGS.get(args[0], ())
    extra = [
        f"{_LOCK}={options.lock_timeout_s}s" if flag == _LOCK else flag
        for flag in flags
        if not any(a.split("=", 1)[0] == flag for a in args)
    ]
    return [options.binary, *args[:head], *extra, *args[head:]]


def command_env(options: TerraformOptions, base: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: the caller's, minus any ``TF_VAR_*`` (only the options' vars
    reach the module) and any variable the options' ``env_cleared`` names, plus
    non-interactive switches, the options' env, and ``TF_VAR_<name>`` for each var (strings as
    they are, anything else as JSON, which HCL reads)."""
    import json

    env = {k: v for k, v in (os.environ if base is None else base).items()}
    for key in [k for k in env if k.startswith("TF_VAR_")]:
        del env[key]
    for pattern in options.env_cleared:
        for key in [k for k in env if re.match(pattern, k)]:
            del env[key]
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    env.update(options.env)
    for name, value in options.vars.items():
        env[f"TF_VAR_{name}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def run(
    options: TerraformOptions,
    args: Sequence[str],
    *,
    on_output: OutputSink | None = None,
    stream_stdout: bool = True,
    json_ui: bool = False,
    ok_codes: tuple[int, ...] = (0,),
    sleep: Callable[[float], None] = time.sleep,
) -> CommandResult:
    """Run one terraform command; retries the options' retryable errors, raises
    :class:`StackLocked` / :class:`EngineError` on any other failure.

    ``stream_stdout=False`` keeps stdout (machine output such as ``-json``) off the sink;
    ``ok_codes`` are the exit codes that count as success (``plan -detailed-exitcode``: 0, 2).
    ``json_ui``: the command was given ``-json`` (terraform's machine-readable UI, one JSON
    message per line): each message goes to the sink, and into the result's text, as the line a
    person would read (:func:`ui_text`; errors as ``Error: ...``, so they are mapped as without
    ``-json``), and the messages themselves are kept in the result.
    """
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_fixed,
    )

    argv = command_args(options, args)
    attempts = 0

    def once() -> CommandResult:
        nonlocal attempts
        attempts += 1
        result = _execute(
            options, argv, on_output=on_output, stream_stdout=stream_stdout, json_ui=json_ui
        )
        result = dataclasses.replace(result, attempts=attempts)
        if result.returncode in ok_codes:
            return result
        combined = result.stdout + "\n" + result.stderr
        if _LOCK_HELD.search(combined):
            raise _locked_error(args[0], combined, options.secrets)
        if _INTERRUPTED.search(combined):
            # Stopped on purpose (a second Ctrl-C, ci's watchdog): never started again, even
            # when what the interrupted calls printed matches a retryable error.
            raise _failed_error(result, args[0], options.secrets)
        for pattern, reason in options.retryable_errors.items():
            if re.search(pattern, combined):
                if on_output is not None:
                    on_output(f"terraform {args[0]}: {reason}; retrying")
                raise _Retryable(result, reason)
        raise _failed_error(result, args[0], options.secrets)

    retrying = Retrying(
        stop=stop_after_attempt(max(1, options.max_retries)),
        wait=wait_fixed(options.retry_wait_s),
        retry=retry_if_exception_type(_Retryable),
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(once)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        assert isinstance(last, _Retryable)
        raise TransientError(
            f"terraform {args[0]} failed {last.result.attempts} times ({last.reason}): "
            f"{_error_summary(last.result, options.secrets)}"
        ) from None


def _execute(
    options: TerraformOptions,
    argv: list[str],
    *,
    on_output: OutputSink | None,
    stream_stdout: bool,
    json_ui: bool = False,
) -> CommandResult:
    started = time.monotonic()
    out: list[str] = []
    err: list[str] = []
    messages: list[dict[str, Any]] = []
    stdout_sink = on_output if stream_stdout else None

    def on_stdout(line: str) -> None:
        if json_ui:
            message = _ui_message(line)
            if message is not None:
                messages.append(message)
                for text in ui_text(message):
                    _collect(text + "\n", out, stdout_sink, options.secrets)
                return
        _collect(line, out, stdout_sink, options.secrets)

    try:
        # A group of its own, announced (processes.py): ci's watchdog stops it when ci dies;
        # its output in files, so that it outlives ci to be stopped gracefully (Tailed).
        child = processes.Tailed(
            argv,
            cwd=options.work_dir,
            env=command_env(options),
            on_stdout=on_stdout,
            on_stderr=lambda line: _collect(line, err, on_output, options.secrets),
        )
    except FileNotFoundError:
        raise EngineUnavailable(
            f"`{options.binary}` is not installed (or not on PATH); install it or set "
            "terraform_binary to terraform or tofu"
        ) from None
    # Given up on (an interrupt): terraform stops as on Ctrl-C, its lock released.
    returncode = child.wait(grace_s=STOP_GRACE_S)
    return CommandResult(
        args=tuple(argv[1:]),
        returncode=returncode,
        stdout="".join(out),
        stderr="".join(err),
        duration_s=time.monotonic() - started,
        messages=tuple(messages),
    )


def _ui_message(line: str) -> dict[str, Any] | None:
    """One line of ``-json`` output as its message; None for a line that is not one (terraform
    writes a few early errors as plain text even with ``-json``)."""
    import json

    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "@message" in message else None


def ui_text(message: dict[str, Any]) -> list[str]:
    """The lines a person reads for one machine-readable UI message: its ``@message``; for a
    diagnostic, ``Error: <summary>`` (or ``Warning:``) and its detail, as terraform prints them
    without ``-json`` (so the lock and error mapping reads them the same)."""
    diagnostic = message.get("diagnostic")
    if isinstance(diagnostic, dict):
        severity = "Warning" if diagnostic.get("severity") == "warning" else "Error"
        lines = [f"{severity}: {diagnostic.get('summary', '')}".rstrip()]
        detail = str(diagnostic.get("detail") or "")
        return lines + (["", *detail.splitlines()] if detail else [])
    return str(message.get("@message", "")).splitlines() or [""]


def _collect(line: str, into: list[str], sink: OutputSink | None, secrets: tuple[str, ...]) -> None:
    into.append(line)
    if sink is not None:
        sink(mask(line.rstrip("\n"), secrets))


def _locked_error(command: str, output: str, secrets: tuple[str, ...]) -> StackLocked:
    fields = {m.group(1): m.group(2) for m in _LOCK_FIELD.finditer(output)}
    held = ", ".join(
        f"{k.lower()} {fields[k]}" for k in ("Who", "Operation", "Created", "ID") if k in fields
    )
    return StackLocked(
        mask(
            f"the stack's state is locked by another run ({held or 'no lock details'}); "
            f"terraform {command} waited for it and gave up. Wait for that run to finish and "
            "retry; a lock left by a crashed run is cleared once it is older than the stale-lock "
            "age",
            secrets,
        )
    )


def _error_summary(result: CommandResult, secrets: tuple[str, ...]) -> str:
    text = result.stderr + "\n" + result.stdout
    errors = list(dict.fromkeys(m.group(1) for m in _ERROR_LINE.finditer(text)))
    if not errors:
        tail = [line.strip() for line in text.strip().splitlines() if line.strip()]
        errors = tail[-1:] or [f"exit code {result.returncode}"]
    quoted = "; ".join(errors[:_MAX_QUOTED_ERRORS])
    more = len(errors) - _MAX_QUOTED_ERRORS
    return mask(quoted + (f" (and {more} more)" if more > 0 else ""), secrets)


def _failed_error(result: CommandResult, command: str, secrets: tuple[str, ...]) -> EngineError:
    return EngineError(
        f"terraform {command} failed (exit {result.returncode}): {_error_summary(result, secrets)}"
    )
