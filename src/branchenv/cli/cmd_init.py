"""`branchenv init`: set up an existing Pulumi or Terraform project for branchenv."""

from __future__ import annotations

import typer

from branchenv.cli import render
from branchenv.cli.options import epilog, new_app, option

app = new_app()


@app.command("init", epilog=epilog())
def init(
    program: str | None = option(
        "--program", default_help="default: this one; where Pulumi.yaml or the *.tf files are"
    ),
    force: bool = option("--force", False, default_help="branchenv.toml and the example"),
    as_json: bool = option("--json", False),
) -> None:
    """Write a commented branchenv.toml and an example integration suite (tests/integration/)
    for the Pulumi or Terraform project in this directory."""
    from pathlib import Path

    from branchenv.scaffold import init_project

    outcome = init_project(Path.cwd(), program=program, force=force)

    def human() -> None:
        typer.echo(
            f"{outcome.kind} project {outcome.project!r} (program {outcome.program!r}): wrote "
            + ", ".join(outcome.written)
        )
        typer.echo("next:")
        for step in outcome.next_steps:
            typer.echo(f"  {step}")

    render.emit(outcome, as_json=as_json, human=human)
