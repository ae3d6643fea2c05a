"""`branchenv init`: set up an existing Pulumi or Terraform project for branchenv."""

from __future__ import annotations

import typer

from branchenv.cli import render

app = typer.Typer()


@app.command("init")
def init(
    program: str | None = typer.Option(
        None,
        "--program",
        help="The program's directory, relative to here (default: this one): where Pulumi.yaml "
        "or the *.tf files are.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace branchenv.toml and the example."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
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
