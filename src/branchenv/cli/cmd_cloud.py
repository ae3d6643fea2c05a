"""`branchenv cloud start|stop|status`: the local cloud (moto server + function runner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from branchenv.cli import render
from branchenv.cli.options import epilog, new_app, option

if TYPE_CHECKING:
    from branchenv.localcloud import CloudStatus, LocalCloud

app = new_app()
cloud_app = new_app(
    epilog=epilog(),
    help="The local cloud: a moto server on loopback and the local function runner.",
    no_args_is_help=True,
)
app.add_typer(cloud_app, name="cloud")

JsonOpt = option("--json", False)


def _cloud(*, create: bool = False) -> tuple[LocalCloud, str]:
    from branchenv.config import ensure_state_dir, load_settings
    from branchenv.localcloud import LocalCloud

    settings = load_settings()
    if create:
        ensure_state_dir(settings)
    return LocalCloud(settings.state_path), settings.region


def _show(status: CloudStatus, as_json: bool) -> None:
    def human() -> None:
        if status.running:
            render.table(
                "local cloud",
                ["field", "value"],
                [
                    ("state", "running"),
                    ("pid", status.pid),
                    ("AWS endpoint", status.endpoint_url),
                    ("functions", status.functions_url),
                    ("started", status.started_at),
                    ("log", status.log_path),
                    ("note", status.note or ""),
                ],
            )
        else:
            typer.echo(f"local cloud: stopped ({status.note or 'not running'})")

    render.emit(status, as_json=as_json, human=human)


@cloud_app.command("start", epilog=epilog())
def start(as_json: bool = JsonOpt) -> None:
    """Start the local cloud in the background (idempotent); wait until it answers."""
    cloud, _ = _cloud(create=True)
    _show(cloud.start(), as_json)


@cloud_app.command("stop", epilog=epilog())
def stop(as_json: bool = JsonOpt) -> None:
    """Stop the local cloud (idempotent). Everything in it is discarded."""
    cloud, _ = _cloud()
    _show(cloud.stop(), as_json)


@cloud_app.command("status", epilog=epilog())
def status(as_json: bool = JsonOpt) -> None:
    """Report whether the local cloud runs, with its endpoints."""
    cloud, _ = _cloud()
    _show(cloud.status(), as_json)
