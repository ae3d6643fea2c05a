"""The `branchenv` command line: parses, calls core functions, renders their results.

Every command lives in a ``cmd_<group>.py`` module of this package that exposes ``app``, a
:class:`typer.Typer`; :func:`build_app` discovers them, so later work adds a module without
editing anyone else's file. Modules import heavy libraries (pulumi, boto3, moto) inside the
command functions only, so ``branchenv --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from branchenv import __version__
from branchenv.errors import BranchenvError
from branchenv.harness.signals import Interrupted


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"branchenv {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    """Return the root typer app with every ``cmd_*`` module's commands merged in."""
    app = typer.Typer(
        name="branchenv",
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning a :class:`BranchenvError` into one line and its code."""
    app = build_app()
    try:
        # Non-standalone mode hands `typer.Exit(code)` back as the return value.
        result = app(args=argv, standalone_mode=False)
    except BranchenvError as exc:
        typer.echo(f"branchenv: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:  # stopped by SIGINT/SIGTERM before it acted
        typer.echo(f"branchenv: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("branchenv: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("branchenv: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if type(exc).__module__.startswith(("botocore.", "boto3.")):
            # An AWS call failed outside any translation (no credentials, access denied, ...):
            # one line, never a traceback with request details.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(
                f"branchenv: error: AWS: {first}; check the credentials and region this "
                "command runs with (AWS_PROFILE, AWS_REGION, --target)",
                err=True,
            )
            sys.exit(1)
        click_error, usage_error = _click_error_types()
        if isinstance(exc, click_error):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2 if isinstance(exc, usage_error) else exc.exit_code)  # type: ignore[attr-defined]
        raise
    sys.exit(result if isinstance(result, int) else 0)


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
