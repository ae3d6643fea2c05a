"""``branchenv config …``: show the project's settings and where each value came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from branchenv.cli import render

if TYPE_CHECKING:
    from branchenv.config import SettingEntry

app = typer.Typer()
config_app = typer.Typer(help="Show the project's settings and where each value came from.")
app.add_typer(config_app, name="config")


def _human(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)


@config_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    region: str | None = typer.Option(None, "--region", help="Override the AWS region."),
    target: str | None = typer.Option(None, "--target", help="Override the target: local or aws."),
) -> None:
    """Print each setting, its value and its source (default, file, env var or flag)."""
    # imported here: reading settings is not needed for `branchenv --help`
    from branchenv.config import describe, load_settings

    settings = load_settings(
        overrides={"region": region, "default_target": target},
        flag_names={"default_target": "--target"},
    )
    entries: tuple[SettingEntry, ...] = describe(settings)
    document = {
        "project_dir": settings.project_dir,
        "settings": {e.key: {"value": e.value, "source": e.source} for e in entries},
    }
    render.emit(
        document,
        as_json=as_json,
        human=lambda: render.table(
            f"branchenv settings for {settings.project_dir}",
            ("Setting", "Value", "Source"),
            ((e.key, _human(e.value), e.source) for e in entries),
        ),
    )
