"""The CLI's top level: one line and a named exit code for our errors, typer.Exit honoured."""

from __future__ import annotations

import pytest
import typer

import branchenv.cli as cli
from branchenv.errors import SafetyRefusal, UsageError


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def ok() -> None:
        typer.echo("fine")

    return app


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (typer.Exit(4), 4, None),
        (typer.Exit(0), 0, None),
        (UsageError("bad input; pass --x"), 2, "branchenv: error: bad input; pass --x"),
        (SafetyRefusal("refused"), 3, "branchenv: error: refused"),
    ],
)
def test_exit_codes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    line: str | None,
) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(exc))
    with pytest.raises(SystemExit) as done:
        cli.main(["boom"])
    assert done.value.code == code
    err = capsys.readouterr().err
    if line:
        assert err.strip() == line


def test_success_and_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(RuntimeError("unused")))
    with pytest.raises(SystemExit) as done:
        cli.main(["ok"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == "fine"
    with pytest.raises(SystemExit) as done:
        cli.main(["nope"])
    assert done.value.code == 2


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["boom"])


def test_an_aws_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import NoCredentialsError

    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(NoCredentialsError()))
    with pytest.raises(SystemExit) as done:
        cli.main(["boom"])
    assert done.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("branchenv: error: AWS: Unable to locate")
