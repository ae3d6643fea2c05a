"""``branchenv config …``: show the project's settings and where each value came from."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from branchenv.cli import render
from branchenv.cli.options import epilog, new_app, option

if TYPE_CHECKING:
    from branchenv.config import SettingEntry

app = new_app()
config_app = new_app(
    epilog=epilog(), help="Show the project's settings and where each value came from."
)
app.add_typer(config_app, name="config")


def _human(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)


@config_app.command("show", epilog=epilog())
def show(
    as_json: bool = option("--json", False),
    region: str | None = option("--region", default_help="default: region"),
    target: str | None = option("--target", default_help="default: default_target"),
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
        # a setting shows as written (a budget limit is "1.25", not money with a currency)
        "settings": {
            e.key: {
                "value": str(e.value) if isinstance(e.value, Decimal) else e.value,
                "source": e.source,
            }
            for e in entries
        },
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
