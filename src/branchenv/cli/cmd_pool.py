"""`branchenv pool fill | status | drain`: the warm pool of ready stacks (docs/pool.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from branchenv.cli import common, render
from branchenv.cli.options import epilog, new_app, option

if TYPE_CHECKING:
    from branchenv.provision import StackContext

app = new_app()
pool_app = new_app(
    name="pool",
    help="A warm pool of ready stacks that `up --pool` / `ci --pool` claim in an instant.",
    no_args_is_help=True,
    epilog=epilog(),
)
app.add_typer(pool_app)

TargetOpt = option("--target", default_help="default: default_target")
EngineOpt = option("--engine", default_help="default: auto")
JsonOpt = option("--json", False)
ProgramOpt = option("--program", default_help="whose pool; default: the project's program")


def _context(
    target: str | None, engine: str | None, program: str | None, *, start: bool
) -> StackContext:
    from branchenv.provision import resolve

    settings = common.load(target=target, engine=engine)
    # The pool's own stacks are named for the pool; the branch only names the caller.
    return resolve(
        settings,
        branch="pool",
        target=None,
        engine=None,
        start_local_cloud=start,
        program=program,
    )


@pool_app.command("fill", epilog=epilog())
def fill(
    size: int | None = option("--size", default_help="default: the pool_size setting"),
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    profile: str = option("--profile", "ephemeral"),
    as_json: bool = JsonOpt,
) -> None:
    """Create pool stacks until the pool holds --size (or pool_size) ready stacks.

    Exit 0 when the pool is full, 1 when creating a stack failed, 2 for bad input.
    """
    from branchenv import pool
    from branchenv.provision import check_profile

    check_profile(profile)
    if size is not None:
        pool.check_size(size)
    ctx = _context(target, engine, program, start=True)
    outcome = pool.fill(ctx, size=size, profile=profile, say=render.status)

    def human() -> None:
        typer.echo(
            f"pool {outcome.pool} ({outcome.engine} engine, {outcome.target}): "
            f"{len(outcome.created) + len(outcome.present)} of "
            f"{common.plural(outcome.size, 'stack')}; "
            f"created {len(outcome.created)} [{outcome.duration_s:.1f} s]"
        )

    render.emit(outcome, as_json=as_json, human=human)


@pool_app.command("status", epilog=epilog())
def status(
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the pool's stacks: free or claimed (by which branch, until when), and the idle
    burn rate (estimated USD/h of the free stacks)."""
    from branchenv import pool
    from branchenv.cost.budget import money
    from branchenv.metadata import format_timestamp

    ctx = _context(target, engine, program, start=False)
    st = pool.status(ctx)

    def human() -> None:
        render.table(
            f"pool {st.pool} ({st.engine} engine, {st.target}): {st.free} free of "
            f"{len(st.stacks)}, size {st.size}",
            ["stack", "state", "claimed by", "owner", "expires", "resources", "USD/h"],
            [
                (
                    s.stack,
                    s.state,
                    s.claimed_by,
                    s.claimed_owner,
                    format_timestamp(s.expires_at) if s.expires_at else None,
                    s.resource_count,
                    f"${money(s.hourly, 4)}" if s.hourly is not None else "n/a",
                )
                for s in st.stacks
            ],
        )
        idle = "n/a" if st.idle_hourly is None else f"${money(st.idle_hourly, 4)}/h"
        extra = f" (a lower bound; unpriced: {', '.join(st.unpriced)})" if st.unpriced else ""
        typer.echo(f"idle burn rate: {idle}{extra}")
        if st.refill is not None and st.refill.running:
            typer.echo(f"background refill running: pid {st.refill.pid} (log {st.refill.log})")

    render.emit(st, as_json=as_json, human=human)


@pool_app.command("drain", epilog=epilog())
def drain(
    yes: bool = option("--yes", False, default_help="destroy; default: a dry run"),
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Destroy the pool's free stacks (dry run unless --yes); claimed stacks stay until their
    branch releases them. Exit 1 if a destroy failed."""
    from branchenv import pool
    from branchenv.errors import OperationFailed

    ctx = _context(target, engine, program, start=yes)
    outcome = pool.drain(ctx, yes=yes, say=render.status)

    def human() -> None:
        verb = "would destroy" if outcome.dry_run else "destroyed"
        typer.echo(
            f"pool {outcome.pool}: {verb} {common.plural(len(outcome.destroy), 'free stack')}"
            + (f": {', '.join(outcome.destroy)}" if outcome.destroy else "")
        )
        if outcome.kept:
            typer.echo(f"kept (claimed): {', '.join(outcome.kept)}")
        if outcome.dry_run and outcome.destroy:
            typer.echo("dry run: pass --yes to destroy them")

    render.emit(outcome, as_json=as_json, human=human)
    if outcome.failed:
        raise OperationFailed(f"pool drain: {'; '.join(outcome.failed)}")
