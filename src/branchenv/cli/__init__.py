"""The `branchenv` command line: parses, calls core functions, renders their results.

Every command lives in a ``cmd_<group>.py`` module of this package that exposes ``app``, a
:class:`typer.Typer`; :func:`build_app` discovers them, so later work adds a module without
editing anyone else's file. Modules import heavy libraries (pulumi, boto3, moto) inside the
command functions only, so ``branchenv --help`` stays fast.
"""

from __future__ import annotations

import gc
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

import typer

from branchenv import __version__
from branchenv.cifold import Annotator
from branchenv.cli import output
from branchenv.errors import EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE, BranchenvError
from branchenv.harness.signals import Interrupted


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"branchenv {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    """Return the root typer app with every ``cmd_*`` module's commands merged in."""
    from branchenv.cli.options import epilog, new_app

    app = new_app(
        name="branchenv",
        epilog=epilog(signals=True),
        help="Every git branch its own short-lived, production-like cloud stack.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False,
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ) -> None:
        """Every git branch its own short-lived, production-like cloud stack."""

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_"))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        app.add_typer(module.app)
    return app


GC_THRESHOLD = (50_000, 20, 10)
"""The collector's thresholds while the CLI runs as the process's command (Python's: 700, 10,
10). With those, the imports a command makes (boto3, typer's pydantic, the Pulumi SDK and
pulumi_aws) and an in-process Pulumi program's objects set off a young collection every 700
objects and a full one often, for objects that live to the end: 20-25 % of an `up`'s CPU.
Cycles are still collected, 50 000 allocations apart (a few MB at most)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning an error into one line on stderr and its exit code.

    With ``--json`` (or ``--format json``) every outcome is also one envelope on stdout
    (:mod:`branchenv.cli.output`), errors included: ours, usage errors, interrupts and bugs.

    Run as the process's command (``argv`` None: the console script), the objects left at the
    end are frozen out of the garbage collector: the interpreter's last collection at exit
    walked every one of them, 1.5 s of CPU after an ``up`` or ``ci`` that ran a Pulumi program
    in process (tens of thousands of SDK objects), for nothing, since the process is ending.
    Likewise it collects less often while it runs (:data:`GC_THRESHOLD`).
    A caller passing ``argv`` (a test, an embedding program) keeps its collector as it was."""
    if argv is None:
        gc.set_threshold(*GC_THRESHOLD)
    try:
        _main(argv)
    finally:
        if argv is None:
            gc.freeze()


def _main(argv: list[str] | None) -> None:
    import typer.main

    app = build_app()
    args = list(sys.argv[1:] if argv is None else argv)
    invocation = output.begin(args, typer.main.get_command(app))

    def fail(body: dict[str, object], line: str | None) -> NoReturn:
        if invocation.json:
            output.print_document(output.envelope(error=body, command=invocation.command))
        if line:
            typer.echo(line, err=True)
        code = int(str(body["exit"]))
        message = str(body["message"]) + (f"; {body['hint']}" if body.get("hint") else "")
        annotate_failure(invocation, code, message)
        sys.exit(code)

    try:
        # The CI's log (GitHub Actions, GitLab CI) gets folds and annotations; a bad
        # BRANCHENV_CI_ANNOTATIONS is bad input like any other, found before anything runs.
        invocation.annotator = Annotator.from_env(os.environ, to_stderr=invocation.json)
        # Non-standalone mode hands `typer.Exit(code)` back as the return value.
        result = app(args=args, standalone_mode=False)
    except BranchenvError as exc:
        fail(output.body_for(exc, invocation.command), f"branchenv: error: {exc}")
    except Interrupted as exc:  # stopped by SIGINT/SIGTERM before it acted
        fail(
            output.error_body(code="interrupted", exit_code=exc.exit_code, message=str(exc)),
            f"branchenv: {exc}",
        )
    except typer.Exit as exc:
        if exc.exit_code and invocation.json and not invocation.emitted:
            fail(output.error_body(code="failed", exit_code=exc.exit_code, message="failed"), None)
        annotate_failure(invocation, exc.exit_code, None)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail(
            output.error_body(code="interrupted", exit_code=130, message="interrupted"),
            "branchenv: interrupted",
        )
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if type(exc).__module__.startswith(("botocore.", "boto3.")):
            # An AWS call failed outside any translation (no credentials, access denied, ...):
            # one line, never a traceback with request details.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            message = f"AWS: {first}"
            hint = (
                "check the credentials and region this command runs with (AWS_PROFILE, "
                "AWS_REGION, --target)"
            )
            fail(
                output.error_body(code="aws_error", exit_code=1, message=message, hint=hint),
                f"branchenv: error: {message}; {hint}",
            )
        click_error, usage_error = _click_error_types()
        if isinstance(exc, click_error):
            code = 2 if isinstance(exc, usage_error) else exc.exit_code  # type: ignore[attr-defined]
            if invocation.json:
                where = f"branchenv {invocation.command}" if invocation.command else "branchenv"
                body = output.error_body(
                    code="usage",
                    exit_code=code,
                    message=exc.format_message(),  # type: ignore[attr-defined]
                    hint=f"`{where} --help` lists the options and their values",
                )
                output.print_document(output.envelope(error=body, command=invocation.command))
            exc.show()  # type: ignore[attr-defined]
            annotate_failure(invocation, code, exc.format_message())  # type: ignore[attr-defined]
            sys.exit(code)
        annotate_failure(invocation, EXIT_FAILED, f"internal error: {type(exc).__name__}")
        if invocation.json:  # a bug: say so on stdout too, then keep its traceback
            output.print_document(
                output.envelope(
                    error=output.error_body(
                        code="internal_error",
                        exit_code=1,
                        # the type only: an arbitrary message may hold anything
                        message=f"internal error: {type(exc).__name__} (traceback on stderr)",
                        hint="this is a bug in branchenv: please report it with the traceback",
                    ),
                    command=invocation.command,
                )
            )
        raise
    sys.exit(result if isinstance(result, int) else 0)


_FAILURES = {EXIT_FAILED: "failed", EXIT_USAGE: "bad input", EXIT_REFUSED: "refused"}


def annotate_failure(invocation: output.Invocation, code: int, message: str | None) -> None:
    """A command that failed (exit 1), was refused (3) or given bad input (2) is an error
    annotation on GitHub Actions, unless the run already wrote its own (a red `ci`'s failed
    tests). ``message``: the one line printed on stderr (never a secret); None: the command
    printed its own, and the annotation says only that it failed."""
    label = _FAILURES.get(code)
    if label is None or invocation.annotator.errors:
        return
    where = f"branchenv {invocation.command}" if invocation.command else "branchenv"
    invocation.annotator.error(
        message or f"{where} {label} (exit {code}): see the log above",
        title=f"{where}: {label} (exit {code})",
    )


def _click_error_types() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """Click's ClickException and UsageError classes: typer >= 0.16 vendors its own click
    (``typer._click``), older typers use the ``click`` package; accept both."""
    import importlib

    errors: list[type[Exception]] = []
    usage: list[type[Exception]] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        errors.append(module.ClickException)
        usage.append(module.UsageError)
    return tuple(errors), tuple(usage)
